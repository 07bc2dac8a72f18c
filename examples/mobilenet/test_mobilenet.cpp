// The example's checks, one per ctest test (test_mobilenet CHECK; exit 0 passed, 1 failed, 77
// skipped): hard_swish's backward against finite differences with dsc's exported gradient checker
// (dsc::grad_check), its f32 / f16 forward against f64, its CUDA kernels against the CPU ones (on
// a GPU), the InvertedResidual block, the model's shapes and parameter count, the model as dsc's
// registry builds it for train_main, and mixed-precision training steps on the CPU.
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/cuda_interop.h"
#include "core/grad_check.h"
#include "core/ops.h"
#include "hard_swish.h"
#include "layers/model_registry.h"
#include "mobilenet.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace {

int g_failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) ++g_failures;
  std::cout << (ok ? "  ok      " : "  FAILED  ") << what << "\n";
}

// Values in [-5, 5] at least 0.05 away from hard_swish's kinks at -3 and 3.
dsc::Tensor off_kinks(const dsc::Shape& shape, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-5, 5);
  std::vector<double> v(size_t(dsc::shape_numel(shape)));
  for (double& x : v) {
    do x = u(rng);
    while (std::abs(std::abs(x) - 3) < 0.05);
  }
  return dsc::Tensor::from(v, shape, dsc::DType::F64);
}

double hard_swish_ref(double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }

double max_abs_diff(const dsc::Tensor& a, const dsc::Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = x.size() == y.size() ? 0 : INFINITY;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

int hard_swish_grad() {
  std::mt19937_64 rng(1);
  dsc::Tensor x = off_kinks({4, 3, 5, 5}, rng);
  x.set_requires_grad(true);
  // All 300 elements, so every region of the function (0, 1 and the slope) is checked.
  dsc::GradCheckOptions opt;
  opt.max_samples = 300;
  const dsc::GradCheckResult r = dsc::grad_check([&] { return mobilenet::hard_swish(x); }, {x}, opt);
  std::cout << "  " << r.message << "\n";
  expect(r.passed, "hard_swish backward agrees with central differences (f64)");
  const dsc::Tensor y = mobilenet::hard_swish(x);
  expect(y.grad_fn() && std::string(y.grad_fn()->name()) == "hard_swish",
         "hard_swish is recorded in the graph under its name");
  std::vector<double> want;
  for (double v : x.to_vector()) want.push_back(hard_swish_ref(v));
  expect(max_abs_diff(y, dsc::Tensor::from(want, x.shape(), dsc::DType::F64)) < 1e-12,
         "hard_swish forward equals x * relu6(x + 3) / 6");
  return 0;
}

int hard_swish_mixed() {
  std::mt19937_64 rng(2);
  const dsc::Tensor x64 = off_kinks({2, 4, 6, 6}, rng);
  const dsc::Tensor y64 = mobilenet::hard_swish(x64);
  const dsc::Tensor y32 = mobilenet::hard_swish(x64.to(dsc::DType::F32));
  const dsc::Tensor y16 = mobilenet::hard_swish(x64.to(dsc::DType::F16));
  expect(y32.dtype() == dsc::DType::F32 && y16.dtype() == dsc::DType::F16,
         "hard_swish computes in its input's dtype");
  expect(max_abs_diff(y32, y64) < 1e-5, "f32 forward within 1e-5 of f64");
  expect(max_abs_diff(y16, y64) < 5 * 4.9e-4 * 5, "f16 forward within f16 rounding of f64");
  return 0;
}

int hard_swish_cuda() {
  if (!dsc::cuda_available()) {
    std::cout << "  skipped: no usable GPU (dsc built with CUDA: " << dsc::built_with_cuda()
              << ")\n";
    return 77;
  }
  std::mt19937_64 rng(3);
  for (dsc::DType t : {dsc::DType::F32, dsc::DType::F16}) {
    const dsc::Tensor x = off_kinks({3, 5, 7, 9}, rng).to(t);
    const dsc::Tensor dy = dsc::Tensor::uniform({3, 5, 7, 9}, rng, -1, 1, t);
    dsc::Tensor xc = x.clone(), xg = x.to(dsc::Device::CUDA);
    xc.set_requires_grad(true);
    xg.set_requires_grad(true);
    const dsc::Tensor yc = mobilenet::hard_swish(xc), yg = mobilenet::hard_swish(xg);
    dsc::ops::sum(dsc::ops::mul(yc, dy)).backward();
    dsc::ops::sum(dsc::ops::mul(yg, dy.to(dsc::Device::CUDA))).backward();
    const double tol = t == dsc::DType::F16 ? 1e-2 : 1e-5;
    const std::string name = dsc::dtype_name(t);
    expect(yg.device() == dsc::Device::CUDA, name + ": the output stays on the GPU");
    expect(max_abs_diff(yg, yc) <= tol, name + ": CUDA forward equals the CPU kernel's");
    expect(max_abs_diff(xg.grad(), xc.grad()) <= tol, name + ": CUDA backward equals the CPU's");
  }
  return 0;
}

int block() {
  std::mt19937_64 rng(4);
  mobilenet::InvertedResidual same(8, 8, 4, 1, rng), down(8, 12, 4, 2, rng);
  dsc::Tensor x = dsc::Tensor::uniform({2, 8, 9, 9}, rng, -1, 1);
  expect(same.forward(x).shape() == dsc::Shape{2, 8, 9, 9}, "stride 1: same shape (residual)");
  expect(down.forward(x).shape() == dsc::Shape{2, 12, 5, 5}, "stride 2: 12 x 5 x 5");
  expect(same.parameters().front().name == "body.expand_conv.weight",
         "parameters are named after the block's layers");
  // The residual path: the block's output minus its body's output is x itself.
  dsc::Tensor body_out;
  for (const auto& [name, child] : same.children()) body_out = child->forward(x);
  expect(max_abs_diff(dsc::ops::add(body_out, x), same.forward(x)) < 1e-6,
         "stride 1, in == out: the input is added back");
  return 0;
}

int model() {
  auto net = mobilenet::make_mobilenet(5);
  const dsc::ParamCount c = dsc::count_parameters(*net);
  std::cout << "  parameters: " << c.total << " (" << c.trainable << " trainable)\n";
  // Convolutions and Linear as in mobilenet.h, BatchNorm counted as Keras does (gamma, beta and
  // the two running statistics): 90,826 in all, of which 3,904 running statistics (1,952 channels).
  expect(c.total == 90826 && c.trainable == 86922, "parameter count 90,826 (86,922 trainable)");
  std::mt19937_64 rng(6);
  dsc::Tensor x = dsc::Tensor::uniform({3, 3, 32, 32}, rng, -1, 1);
  expect(net->forward(x).shape() == dsc::Shape{3, 10}, "32x32 RGB in, 10 logits out");
  return 0;
}

int registered() {
  mobilenet::register_mobilenet();
  mobilenet::register_mobilenet();  // a second call is harmless (main and tests may both call it)
  expect(dsc::model_registered("mobilenet"), "\"mobilenet\" is registered");
  bool listed = false;
  for (const auto& [name, description] : dsc::registered_models())
    listed = listed || (name == "mobilenet" && !description.empty());
  expect(listed, "listed with its description (train --help, unknown --model errors)");
  // The registry builds the same model as make_mobilenet for the same seed.
  const auto a = dsc::make_model("mobilenet", dsc::ModelSpec{.seed = 5});
  const auto b = mobilenet::make_mobilenet(5);
  const auto pa = a->parameters(), pb = b->parameters();
  bool same = pa.size() == pb.size();
  for (size_t i = 0; same && i < pa.size(); ++i)
    same = pa[i].name == pb[i].name && pa[i].tensor.to_vector() == pb[i].tensor.to_vector();
  expect(same, "make_model(\"mobilenet\", seed 5) has make_mobilenet(5)'s parameters");
  // The data set's channels and classes reach the model.
  std::mt19937_64 rng(9);
  const auto gray = dsc::make_model("mobilenet", dsc::ModelSpec{.seed = 1, .in_channels = 1,
                                                                .image = 16, .classes = 7});
  expect(gray->forward(dsc::Tensor::uniform({2, 1, 16, 16}, rng, -1, 1)).shape() ==
             dsc::Shape{2, 7},
         "1-channel 16x16 images, 7 classes: [2, 7] logits");
  return 0;
}

int amp_step() {
  // A fixed batch memorised by Adam, in f32 and in mixed precision (f16 activations, f32 master
  // parameters: the layers and hard_swish never mention the compute dtype). 16x16 images keep
  // it short (the model pools globally, so any size from 8x8 works).
  std::mt19937_64 rng(7);
  const dsc::Tensor x = dsc::Tensor::uniform({16, 3, 16, 16}, rng, -1, 1);
  std::vector<double> lv(16);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = double(i % 10);
  const dsc::Tensor labels = dsc::Tensor::from(lv, {16}, dsc::DType::I32);
  for (bool amp : {false, true}) {
    auto net = mobilenet::make_mobilenet(8);
    dsc::Adam opt(*net, dsc::AdamOptions{.lr = 3e-3f});
    dsc::LossScaler scaler(dsc::LossScalerOptions{.init_scale = 1024.0f, .enabled = amp});
    std::vector<double> losses;
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      const dsc::Tensor logits = net->forward(amp ? x.to(dsc::DType::F16) : x);
      if (step == 0) expect(logits.dtype() == (amp ? dsc::DType::F16 : dsc::DType::F32),
                            std::string(amp ? "amp" : "fp32") + ": logits in the compute dtype");
      const dsc::Tensor loss = dsc::ops::cross_entropy(logits, labels);
      losses.push_back(loss.item());
      dsc::ops::mul(loss, scaler.scale_tensor()).backward();
      opt.step(scaler.check(opt.parameters().grads()), scaler.scale_tensor());
      scaler.update();
    }
    std::cout << "  " << (amp ? "amp " : "fp32") << " loss " << losses.front() << " -> "
              << losses.back() << "\n";
    expect(losses.back() < 0.5 * losses.front(), std::string(amp ? "amp" : "fp32") +
                                                      ": the loss halves on a fixed batch");
    bool f32_grads = true;
    for (const dsc::NamedTensor& p : net->parameters())
      f32_grads = f32_grads && p.tensor.dtype() == dsc::DType::F32 &&
                  p.tensor.grad().dtype() == dsc::DType::F32;
    expect(f32_grads, "parameters and their gradients stay f32");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<int()>> checks = {
      {"hard_swish_grad", hard_swish_grad}, {"hard_swish_mixed", hard_swish_mixed},
      {"hard_swish_cuda", hard_swish_cuda}, {"block", block},
      {"model", model},                     {"registered", registered},
      {"amp_step", amp_step}};
  if (argc != 2 || !checks.count(argv[1])) {
    std::cerr << "usage: test_mobilenet CHECK, CHECK one of:";
    for (const auto& [name, f] : checks) std::cerr << " " << name;
    std::cerr << "\n";
    return 2;
  }
  try {
    const int rc = checks.at(argv[1])();
    if (rc != 0) return rc;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return g_failures == 0 ? 0 : 1;
}
