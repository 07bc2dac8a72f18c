// Optimizers and schedules (optim/optimizer.h, optim/schedule.h, core/cpu/optimizer.h): Adam with
// Keras' arithmetic and SGD (plain, momentum, Nesterov, decoupled weight decay) against updates
// computed here in double from the documented formulas, over 3 steps; grad_scale unscaling; the
// ParameterBuffer's single contiguous storage; learning-rate schedules at exact steps.
// Tolerance for parameters: 2e-6 absolute (values O(1), the kernels run in f32: a few ulps per
// step), far below the per-step change (>= 1e-3) and below the gap between Keras' and PyTorch's
// placement of eps in the case built to tell them apart.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/cpu/optimizer.h"
#include "layers/layers.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace dsc {
namespace {

// A module that only holds the given parameters.
class Params : public Module {
 public:
  explicit Params(const std::vector<Tensor>& ts) {
    for (size_t i = 0; i < ts.size(); ++i) {
      std::string name = "p";
      name += std::to_string(i);  // (not "p" + ...: GCC 12 warns spuriously about that)
      p.push_back(register_parameter(name, ts[i]));
    }
  }
  Tensor forward(const Tensor& x) override { return x; }
  std::string name() const override { return "Params"; }
  std::vector<Tensor> p;
};

using Vec = std::vector<double>;

struct AdamRef {
  double lr, b1, b2, eps, wd;
  Vec m, v;
  int t = 0;
  void step(Vec& p, const Vec& g) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps) + lr * wd * p[i];
    }
  }
};

struct SgdRef {
  double lr, momentum, wd;
  bool nesterov;
  Vec buf;
  void step(Vec& p, const Vec& g) {
    if (buf.empty()) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      buf[i] = momentum * buf[i] + g[i];
      const double d = nesterov ? g[i] + momentum * buf[i] : buf[i];
      p[i] -= lr * d + lr * wd * p[i];
    }
  }
};

// Parameters [0.5, -1, 2] and [3, -0.25] with three steps of gradients; the last element's
// gradients are tiny (1e-6), where sqrt(v) ~ eps and Keras' eps placement matters.
const Vec kP0 = {0.5, -1.0, 2.0, 3.0, -0.25};
const std::vector<Vec> kGrads = {{0.1, -0.2, 0.3, 1.5, 1e-6},
                                 {-0.05, -0.4, 0.3, 0.5, 2e-6},
                                 {0.2, 0.1, -0.6, -1.0, -1e-6}};

Params make_params() {
  return Params({Tensor::from({kP0[0], kP0[1], kP0[2]}, {3}), Tensor::from({kP0[3], kP0[4]}, {2, 1})});
}

void set_grads(Params& m, const Vec& g, double scale = 1.0) {
  m.p[0].grad().copy_(Tensor::from({g[0] * scale, g[1] * scale, g[2] * scale}, {3}, DType::F64));
  m.p[1].grad().copy_(Tensor::from({g[3] * scale, g[4] * scale}, {2}, DType::F64));
}

Vec values(const Params& m) {
  Vec v = m.p[0].to_vector();
  for (double x : m.p[1].to_vector()) v.push_back(x);
  return v;
}

TEST_CASE("optim: Adam follows Keras' arithmetic") {
  for (double wd : {0.0, 0.1}) {
    Params model = make_params();
    Adam opt(model, AdamOptions{.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f, .weight_decay = float(wd)});
    AdamRef ref{0.1f, 0.9f, 0.999f, 1e-7f, double(float(wd)), {}, {}};
    Vec p = kP0;
    for (int s = 0; s < 3; ++s) {
      set_grads(model, kGrads[s]);
      opt.step();
      ref.step(p, kGrads[s]);
      test::check_close(values(model), p, 2e-6, 0, "Adam wd " + std::to_string(wd) + " step " + std::to_string(s + 1));
    }
    CHECK(opt.steps() == 3);
  }
  // The tiny-gradient element after one step: Keras gives 0.1 * sqrt(1e-3) / 0.1 * 1e-7 /
  // (sqrt(1e-15) + 1e-7) = 0.0240; PyTorch's (eps after bias correction) would give 0.0909.
  Params model = make_params();
  Adam opt(model, AdamOptions{.lr = 0.1f});
  set_grads(model, kGrads[0]);
  opt.step();
  const double moved = kP0[4] - values(model)[4];
  CHECK(moved == doctest::Approx(0.1 * std::sqrt(1e-3) / 0.1 * 1e-7 / (std::sqrt(1e-15) + 1e-7)).epsilon(1e-3));
  test::check_throws_with([&] { Adam(model, AdamOptions{.lr = -1.0f}); }, {"Adam", "lr"}, "bad Adam lr");
  test::check_throws_with([&] { Adam(model, AdamOptions{.beta1 = 1.0f}); }, {"Adam", "betas"}, "beta1 = 1");
}

TEST_CASE("optim: SGD plain, momentum, Nesterov, decoupled weight decay") {
  struct Case {
    float momentum, wd;
    bool nesterov;
  };
  for (const Case& c : {Case{0.0f, 0.0f, false}, Case{0.9f, 0.0f, false}, Case{0.9f, 0.0f, true},
                        Case{0.5f, 0.1f, false}, Case{0.9f, 0.05f, true}, Case{0.0f, 0.2f, false}}) {
    Params model = make_params();
    Sgd opt(model, SgdOptions{.lr = 0.1f, .momentum = c.momentum, .weight_decay = c.wd, .nesterov = c.nesterov});
    SgdRef ref{0.1f, c.momentum, c.wd, c.nesterov, {}};
    Vec p = kP0;
    for (int s = 0; s < 3; ++s) {
      set_grads(model, kGrads[s]);
      opt.step();
      ref.step(p, kGrads[s]);
      test::check_close(values(model), p, 2e-6, 0,
                        "SGD momentum " + std::to_string(c.momentum) + " wd " + std::to_string(c.wd) +
                            (c.nesterov ? " nesterov" : "") + " step " + std::to_string(s + 1));
    }
  }
  // Plain SGD by hand, one step: p = 0.5 - 0.1 * 0.1 = 0.49 (and the ref above agrees).
  Params model = make_params();
  Sgd opt(model, SgdOptions{.lr = 0.1f, .momentum = 0.0f});
  set_grads(model, kGrads[0]);
  opt.step();
  CHECK(values(model)[0] == doctest::Approx(0.49).epsilon(1e-7));
  test::check_throws_with([&] { Sgd(model, SgdOptions{.momentum = 0.0f, .nesterov = true}); },
                          {"Nesterov"}, "Nesterov without momentum");
}

TEST_CASE("optim: grad_scale divides the gradients first") {
  const double scale = 1024.0;
  for (int kind = 0; kind < 2; ++kind) {
    Params a = make_params(), b = make_params();
    std::unique_ptr<Optimizer> oa, ob;
    if (kind == 0) {
      oa = std::make_unique<Adam>(a, AdamOptions{.lr = 0.05f});
      ob = std::make_unique<Adam>(b, AdamOptions{.lr = 0.05f});
    } else {
      oa = std::make_unique<Sgd>(a, SgdOptions{.lr = 0.05f, .momentum = 0.9f});
      ob = std::make_unique<Sgd>(b, SgdOptions{.lr = 0.05f, .momentum = 0.9f});
    }
    for (int s = 0; s < 3; ++s) {
      set_grads(a, kGrads[s]);
      oa->step();
      set_grads(b, kGrads[s], scale);  // gradients of a loss scaled by 1024
      ob->step(float(scale));
    }
    test::check_close(values(b), values(a), 1e-7, 0, kind == 0 ? "Adam grad_scale" : "SGD grad_scale");
    // Without unscaling the scaled run would be far off (SGD: 1024x the step).
    Params c = make_params();
    Sgd oc(c, SgdOptions{.lr = 0.05f, .momentum = 0.9f});
    set_grads(c, kGrads[0], scale);
    oc.step();
    CHECK(std::abs(values(c)[0] - kP0[0]) > 1.0);
  }
  // The raw kernel, with the formula written out: one Adam step with grad_scale 4.
  float p[2] = {1.0f, -2.0f}, g[2] = {0.4f, -0.8f}, m[2] = {0, 0}, v[2] = {0, 0};
  cpu::adam_step(p, g, m, v, 2, 0.01f, 0.9f, 0.999f, 1e-7f, 0.0f, 1, 4.0f);
  // g/4 = [0.1, -0.2]; m = 0.1 g', v = 0.001 g'^2; lr_t = 0.01 sqrt(0.001) / 0.1;
  // step = lr_t * 0.1 |g'| / (sqrt(0.001) |g'| + 1e-7) ~= 0.01.
  const double lr_t = 0.01 * std::sqrt(1 - 0.999) / (1 - 0.9);
  CHECK(p[0] == doctest::Approx(1.0 - lr_t * 0.01 / (std::sqrt(0.001) * 0.1 + 1e-7)).epsilon(1e-6));
  CHECK(p[1] == doctest::Approx(-2.0 + lr_t * 0.02 / (std::sqrt(0.001) * 0.2 + 1e-7)).epsilon(1e-6));
  CHECK(m[0] == doctest::Approx(0.01f).epsilon(1e-6));
  CHECK(v[1] == doctest::Approx(0.001 * 0.04).epsilon(1e-4));  // 1 - 0.999f = 1.00005e-3
}

TEST_CASE("optim: ParameterBuffer holds every parameter in one contiguous buffer") {
  std::mt19937_64 rng(3);
  auto net = std::make_shared<Sequential>();
  auto conv = net->add("conv", std::make_shared<Conv2d>(2, 3, 3, Conv2dOptions{1, 1, true}, rng));
  auto bn = net->add("bn", std::make_shared<BatchNorm2d>(3));
  net->add("flat", std::make_shared<Flatten>());
  auto fc = net->add("fc", std::make_shared<Linear>(3 * 4 * 4, 5, rng));
  conv->bias.copy_(Tensor::uniform({3}, rng, -1, 1));
  std::vector<std::vector<double>> before;
  for (const NamedTensor& p : net->parameters()) before.push_back(p.tensor.to_vector());
  const void* rm_storage = bn->running_mean.storage().get();

  Sgd opt(*net, SgdOptions{.lr = 0.1f, .momentum = 0.0f});
  ParameterBuffer& buf = opt.parameters();
  CHECK(buf.numel() == count_parameters(*net).trainable);
  CHECK(buf.numel() == 3 * 2 * 9 + 3 + 3 + 3 + 48 * 5 + 5);
  CHECK(buf.values().dtype() == DType::F32);
  CHECK(buf.grads().numel() == buf.numel());
  size_t off = 0, i = 0;
  for (const NamedTensor& p : net->parameters()) {
    INFO(p.name);
    CHECK(p.tensor.storage() == buf.values().storage());
    CHECK(p.tensor.offset() == off);
    CHECK(p.tensor.to_vector() == before[i]);  // values moved, not lost
    REQUIRE(p.tensor.grad().defined());
    CHECK(p.tensor.grad().storage() == buf.grads().storage());
    CHECK(p.tensor.grad().offset() == off);
    off += size_t(p.tensor.numel());
    ++i;
  }
  CHECK(off == size_t(buf.numel()));
  CHECK(conv->weight.storage() == buf.values().storage());  // the layer's own handle follows
  CHECK(bn->running_mean.storage().get() == rm_storage);    // buffers are not parameters

  // backward accumulates straight into the gradient buffer; the update is visible through the
  // layers' own tensors.
  Tensor x = Tensor::uniform({2, 2, 4, 4}, rng, -1, 1);
  Tensor labels = test::random_labels(2, 5, rng);
  ops::cross_entropy(net->forward(x), labels).backward();
  const std::vector<double> g = buf.grads().to_vector();
  CHECK(test::max_abs(g) > 1e-4);
  CHECK(conv->weight.grad().to_vector() == std::vector<double>(g.begin(), g.begin() + 54));
  const std::vector<double> w_before = fc->weight.to_vector();
  const std::vector<double> gw = fc->weight.grad().to_vector();
  opt.step();
  std::vector<double> want(w_before.size());
  for (size_t j = 0; j < want.size(); ++j) want[j] = w_before[j] - 0.1f * gw[j];
  test::check_close(fc->weight, want, 1e-7, 1e-6, "update seen through fc.weight");
  // And writes into the buffer are seen by the layer.
  buf.values().data<float>()[0] = 123.0f;
  CHECK(conv->weight.data<float>()[0] == 123.0f);
  opt.zero_grad();
  CHECK(test::max_abs(buf.grads().to_vector()) == 0.0);
  CHECK(test::max_abs(conv->weight.grad().to_vector()) == 0.0);

  // set_lr changes the step size.
  opt.set_lr(0.5f);
  CHECK(opt.lr() == 0.5f);
  conv->bias.grad().fill_(1.0);
  const double b0 = conv->bias.to_vector()[0];
  opt.step();
  CHECK(conv->bias.to_vector()[0] == doctest::Approx(b0 - 0.5).epsilon(1e-6));

  Params f64({Tensor::zeros({2}, DType::F64)});
  test::check_throws_with([&] { ParameterBuffer pb(f64); }, {"p0", "f32"}, "f64 parameter");
  Sequential empty;
  test::check_throws_with([&] { ParameterBuffer pb(empty); }, {"no parameters"}, "empty model");
}

TEST_CASE("schedule: constant, warm-up + cosine, warm-up + linear") {
  LrSchedule c{ScheduleKind::Constant, 0.01f, 0, 0, 0.0f};
  CHECK(c.lr_at(0) == 0.01f);
  CHECK(c.lr_at(12345) == 0.01f);
  // Warm-up: linear from 0, reaching base_lr on the last warm-up step: lr = base * (s + 1) / W.
  LrSchedule cw{ScheduleKind::Constant, 0.01f, 4, 0, 0.0f};
  CHECK(cw.lr_at(0) == doctest::Approx(0.0025));
  CHECK(cw.lr_at(1) == doctest::Approx(0.005));
  CHECK(cw.lr_at(3) == doctest::Approx(0.01));
  CHECK(cw.lr_at(4) == doctest::Approx(0.01));
  CHECK(cw.lr_at(1000) == doctest::Approx(0.01));

  // base 0.1, min 0.001, 10 warm-up steps, 110 in all: decay over t = (s - 10) / 100.
  LrSchedule cos{ScheduleKind::Cosine, 0.1f, 10, 110, 0.001f};
  const double base = 0.1f, lo = 0.001f;
  CHECK(cos.lr_at(0) == doctest::Approx(0.01));
  CHECK(cos.lr_at(4) == doctest::Approx(0.05));
  CHECK(cos.lr_at(9) == doctest::Approx(0.1));
  CHECK(cos.lr_at(10) == doctest::Approx(0.1));
  CHECK(cos.lr_at(35) == doctest::Approx(lo + (base - lo) * 0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(cos.lr_at(60) == doctest::Approx(lo + (base - lo) * 0.5));
  CHECK(cos.lr_at(85) == doctest::Approx(lo + (base - lo) * 0.5 * (1 - std::sqrt(0.5))));
  CHECK(cos.lr_at(110) == doctest::Approx(lo));
  CHECK(cos.lr_at(1000) == doctest::Approx(lo));  // stays at min_lr after the end

  LrSchedule lin{ScheduleKind::Linear, 0.1f, 10, 110, 0.001f};
  CHECK(lin.lr_at(5) == doctest::Approx(0.06));
  CHECK(lin.lr_at(10) == doctest::Approx(0.1));
  CHECK(lin.lr_at(35) == doctest::Approx(lo + (base - lo) * 0.75));
  CHECK(lin.lr_at(60) == doctest::Approx(lo + (base - lo) * 0.5));
  CHECK(lin.lr_at(110) == doctest::Approx(lo));
  CHECK(lin.lr_at(111) == doctest::Approx(lo));
  // No warm-up: decay starts at step 0.
  LrSchedule lin0{ScheduleKind::Linear, 1.0f, 0, 4, 0.0f};
  CHECK(lin0.lr_at(0) == doctest::Approx(1.0));
  CHECK(lin0.lr_at(1) == doctest::Approx(0.75));
  CHECK(lin0.lr_at(3) == doctest::Approx(0.25));
  CHECK(lin0.lr_at(4) == doctest::Approx(0.0));

  CHECK(parse_schedule_kind("constant") == ScheduleKind::Constant);
  CHECK(parse_schedule_kind("cosine") == ScheduleKind::Cosine);
  CHECK(parse_schedule_kind("linear") == ScheduleKind::Linear);
  test::check_throws_with([] { parse_schedule_kind("step"); }, {"step", "constant", "cosine", "linear"},
                          "unknown schedule");
  CHECK(cos.describe().find("cosine") != std::string::npos);
}

}  // namespace
}  // namespace dsc
