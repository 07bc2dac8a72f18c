// The README's "Writing a layer" examples, compiled and checked: a layer composed from existing
// ops (a residual block) and a layer with its own op and backward rule (LeakyReLU). If these
// break, the README is wrong.
#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <random>

#include "check.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "layers/layers.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace {

// ---- README example 1: compose existing ops; backward comes for free ------------------------
class ResidualBlock : public dsc::Module {
 public:
  ResidualBlock(int channels, std::mt19937_64& rng)
      : conv_(register_module("conv", std::make_shared<dsc::Conv2d>(
                                          channels, channels, 3, dsc::Conv2dOptions{1, 1, true},
                                          rng))) {}
  dsc::Tensor forward(const dsc::Tensor& x) override {
    return dsc::ops::relu(dsc::ops::add(x, conv_->forward(x)));
  }
  std::string name() const override { return "ResidualBlock"; }

 private:
  std::shared_ptr<dsc::Conv2d> conv_;
};

// ---- README example 2: a new op with its own backward rule (CPU, f32/f64) ----------------------
struct LeakyReluNode : dsc::Node {
  float slope = 0.01f;
  const char* name() const override { return "leaky_relu"; }
  std::vector<dsc::Tensor> backward(const dsc::Tensor& dy) override {
    const dsc::Tensor& x = inputs[0];
    dsc::Tensor dx = dsc::Tensor::empty(x.shape(), x.dtype());
    auto run = [&]<class T>() {
      const T* xp = x.data<T>();
      const T* g = dy.data<T>();
      T* d = dx.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) d[i] = xp[i] > 0 ? g[i] : T(slope) * g[i];
    };
    x.dtype() == dsc::DType::F64 ? run.operator()<double>() : run.operator()<float>();
    return {dx};
  }
};

class LeakyReLU : public dsc::Module {
 public:
  explicit LeakyReLU(float slope = 0.01f) : slope_(slope) {}
  dsc::Tensor forward(const dsc::Tensor& x) override {
    dsc::Tensor y = dsc::Tensor::empty(x.shape(), x.dtype());
    auto run = [&]<class T>() {
      const T* xp = x.data<T>();
      T* yp = y.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) yp[i] = xp[i] > 0 ? xp[i] : T(slope_) * xp[i];
    };
    x.dtype() == dsc::DType::F64 ? run.operator()<double>() : run.operator()<float>();
    if (dsc::needs_grad({&x})) {
      auto node = std::make_shared<LeakyReluNode>();
      node->slope = slope_;
      node->inputs = {x};
      dsc::record(y, node);
    }
    return y;
  }
  std::string name() const override { return "LeakyReLU"; }

 private:
  float slope_;
};

// Central differences of sum(f(x) * r) in f64.
double numeric_grad(const std::function<dsc::Tensor(const dsc::Tensor&)>& f, dsc::Tensor x,
                    const dsc::Tensor& r, int64_t i) {
  const double h = 1e-6;
  double* p = x.data<double>();
  const double keep = p[i];
  p[i] = keep + h;
  const double up = dsc::ops::sum(dsc::ops::mul(f(x), r)).item();
  p[i] = keep - h;
  const double down = dsc::ops::sum(dsc::ops::mul(f(x), r)).item();
  p[i] = keep;
  return (up - down) / (2 * h);
}

}  // namespace

TEST_CASE("README example: a residual block built from existing ops trains") {
  std::mt19937_64 rng(7);
  ResidualBlock block(5, rng);
  CHECK(block.parameters().size() == 2);  // conv.weight, conv.bias
  CHECK(block.parameters()[0].name == "conv.weight");
  dsc::Tensor x = dsc::Tensor::randn({2, 5, 6, 7}, rng);
  dsc::Tensor y = block(x);
  CHECK(y.shape() == dsc::Shape{2, 5, 6, 7});
  // y = relu(x + conv(x)) elementwise.
  dsc::Tensor conv = dsc::ops::conv2d(x, block.parameters()[0].tensor,
                                      block.parameters()[1].tensor, 1, 1);
  const auto xv = x.to_vector(), cv = conv.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < yv.size(); ++i) CHECK(yv[i] == doctest::Approx(std::max(0.0, xv[i] + cv[i])));
  dsc::ops::sum(y).backward();
  CHECK(block.parameters()[0].tensor.grad().defined());
}

TEST_CASE("README example: LeakyReLU's own backward rule matches finite differences") {
  std::mt19937_64 rng(11);
  LeakyReLU layer(0.1f);
  std::vector<double> v(3 * 4 * 5);
  std::uniform_real_distribution<double> mag(0.05, 2.0);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (i % 3 == 0 ? -1 : 1) * mag(rng);  // off the kink
  dsc::Tensor x = dsc::Tensor::from(v, {3, 4, 5}, dsc::DType::F64);
  x.set_requires_grad(true);
  dsc::Tensor r = dsc::Tensor::randn({3, 4, 5}, rng, 1.0, dsc::DType::F64);
  dsc::ops::sum(dsc::ops::mul(layer(x), r)).backward();
  const auto g = x.grad().to_vector();
  dsc::NoGradGuard no_grad;
  auto f = [&](const dsc::Tensor& in) { return layer(in); };
  dsc::Tensor probe = x.detach().clone();
  for (int64_t i = 0; i < x.numel(); ++i) {
    CHECK(g[i] == doctest::Approx(numeric_grad(f, probe, r, i)).epsilon(1e-6));
  }
}

// ---- a layer with its own parameters under mixed precision -----------------------------------
// The same layer written two ways: passing its f32 parameters to the ops as they are (how a layer
// is written now: the ops use the f16 view themselves), and wrapping each in compute_view (how
// layers had to be written before). conv2d -> ReLU -> depsep_conv2d -> linear, plus add and mul
// with a parameter.
template <bool kComputeView> class OwnParamsNet : public dsc::Module {
 public:
  explicit OwnParamsNet(std::mt19937_64& rng) {
    w_ = register_parameter("w", dsc::Tensor::uniform({6, 3, 3, 3}, rng, -0.4, 0.4));
    b_ = register_parameter("b", dsc::Tensor::uniform({6}, rng, -0.1, 0.1));
    wd_ = register_parameter("wd", dsc::Tensor::uniform({6, 1, 3, 3}, rng, -0.4, 0.4));
    wp_ = register_parameter("wp", dsc::Tensor::uniform({8, 6, 1, 1}, rng, -0.4, 0.4));
    bp_ = register_parameter("bp", dsc::Tensor::uniform({8}, rng, -0.1, 0.1));
    fw_ = register_parameter("fw", dsc::Tensor::uniform({5, 8 * 4 * 4}, rng, -0.1, 0.1));
    fb_ = register_parameter("fb", dsc::Tensor::zeros({5}));
    gate_ = register_parameter("gate", dsc::Tensor::uniform({4, 5}, rng, 0.5, 1.5));
    shift_ = register_parameter("shift", dsc::Tensor::uniform({4, 5}, rng, -0.1, 0.1));
  }
  dsc::Tensor forward(const dsc::Tensor& x) override {
    using namespace dsc::ops;
    dsc::Tensor h = relu(conv2d(x, p(w_, x), p(b_, x), 1, 1));
    h = depsep_conv2d(h, p(wd_, x), p(wp_, x), p(bp_, x), 2, 1, true);
    h = linear(reshape(h, {h.dim(0), -1}), p(fw_, x), p(fb_, x));
    return add(mul(h, p(gate_, x)), p(shift_, x));
  }
  std::string name() const override { return "OwnParamsNet"; }

 private:
  static dsc::Tensor p(const dsc::Tensor& param, const dsc::Tensor& x) {
    return kComputeView ? dsc::compute_view(param, x) : param;
  }
  dsc::Tensor w_, b_, wd_, wp_, bp_, fw_, fb_, gate_, shift_;
};

// Adam steps as `train` takes them under mixed precision (f16 input, scaled loss, device-resident
// skip); with `cast_once`, a CastCache per step. Returns the losses; the model ends trained.
template <class Net>
std::vector<float> amp_steps(Net& net, dsc::Adam& opt, bool cast_once, const dsc::Tensor& x,
                             const dsc::Tensor& labels, int steps) {
  dsc::LossScaler scaler(dsc::LossScalerOptions{.init_scale = 256.0f, .growth_interval = 3});
  std::vector<float> losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    std::optional<dsc::CastCache> cache;
    if (cast_once) cache.emplace(net, opt.parameters().values(), dsc::DType::F16);
    dsc::Tensor loss = dsc::ops::cross_entropy(net.forward(x), labels);
    losses.push_back(float(loss.item()));
    dsc::ops::mul(loss, scaler.scale_tensor()).backward();
    opt.step(scaler.check(opt.parameters().grads()), scaler.scale_tensor());
    scaler.update();
  }
  return losses;
}

TEST_CASE("a layer with its own parameters trains under mixed precision without compute_view") {
  std::mt19937_64 data_rng(3);
  const dsc::Tensor x = dsc::Tensor::uniform({4, 3, 8, 8}, data_rng, -1, 1).to(dsc::DType::F16);
  std::vector<double> lv(4);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = double(i % 5);
  const dsc::Tensor labels = dsc::Tensor::from(lv, {4}, dsc::DType::I32);
  for (bool cast_once : {false, true}) {
    INFO("CastCache: " << cast_once);
    std::mt19937_64 rng_new(17), rng_old(17);
    OwnParamsNet<false> plain(rng_new);
    OwnParamsNet<true> viewed(rng_old);
    dsc::Adam opt_plain(plain, dsc::AdamOptions{.lr = 1e-2f});
    dsc::Adam opt_viewed(viewed, dsc::AdamOptions{.lr = 1e-2f});
    CHECK(dsc::test::same_bytes(opt_plain.parameters().values(), opt_viewed.parameters().values()));
    const std::vector<float> a = amp_steps(plain, opt_plain, cast_once, x, labels, 12);
    const std::vector<float> b = amp_steps(viewed, opt_viewed, cast_once, x, labels, 12);
    CHECK(a == b);                         // bit for bit, every step
    CHECK(a.back() < a.front() - 0.3f);    // and it learns
    CHECK(dsc::test::same_bytes(opt_plain.parameters().values(), opt_viewed.parameters().values()));
    CHECK(dsc::test::same_bytes(opt_plain.parameters().grads(), opt_viewed.parameters().grads()));
    for (const dsc::NamedTensor& p : plain.parameters()) {
      INFO(p.name);
      CHECK(p.tensor.dtype() == dsc::DType::F32);
      CHECK(p.tensor.grad().dtype() == dsc::DType::F32);
    }
  }
}

TEST_CASE("batch_norm in eval mode: forward works, a backward through it fails loudly") {
  dsc::BatchNorm2d bn(3);
  std::mt19937_64 rng(5);
  dsc::Tensor x = dsc::Tensor::randn({2, 3, 4, 4}, rng);
  bn.eval();
  dsc::Tensor y = bn(x);
  CHECK(y.shape() == x.shape());
  try {
    dsc::ops::sum(y).backward();
    FAIL("expected an error");
  } catch (const dsc::Error& e) {
    CHECK(std::string(e.what()).find("eval mode") != std::string::npos);
  }
}
