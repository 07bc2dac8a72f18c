// Layers (layers/layers.h, layers/module.h). Each layer is checked three ways:
//  1. the composition of ops it is meant to compute, run in f64 on f64 copies of its (randomised)
//     parameters, passes the finite-difference check (check.h) for the input and every parameter;
//  2. the layer's own f32 forward equals that f64 composition on the same values, so the layer
//     really computes it (tolerance rtol * (|ref| + max|ref|), rtol = 2e-4: see test_ops_forward);
//  3. the gradients backward() leaves in the layer's f32 parameters (and the input) equal the f64
//     analytic gradients of step 1 within the same f32 tolerance.
// Then BatchNorm2d's modes and options, and the Module bookkeeping.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "layers/layers.h"
#include "reference.h"

namespace dsc {
namespace {

using test::check_close;

struct LayerCase {
  std::string name;
  std::shared_ptr<Module> layer;
  Shape input;
  // The layer's computation with ops, given the input and the parameters in parameters() order.
  std::function<Tensor(const Tensor&, const std::vector<Tensor>&)> compose;
};

void check_layer(const LayerCase& lc, std::mt19937_64& rng) {
  INFO(lc.name);
  std::vector<NamedTensor> params = lc.layer->parameters();
  REQUIRE(!params.empty());
  // Replace the initial values (zero biases, unit gammas) by random non-trivial ones.
  for (NamedTensor& p : params) {
    CHECK(p.tensor.dtype() == DType::F32);
    CHECK(p.tensor.requires_grad());
    const bool positive = p.name.find("gamma") != std::string::npos;
    p.tensor.copy_(Tensor::uniform(p.tensor.shape(), rng, positive ? 0.5 : -1.0, 1.0));
  }
  Tensor x32 = Tensor::uniform(lc.input, rng, -1, 1);

  // 1. f64 composition, finite differences.
  Tensor x64 = test::f64_leaf(x32);
  std::vector<Tensor> p64;
  for (const NamedTensor& p : params) p64.push_back(test::f64_leaf(p.tensor));
  Tensor ref_out;
  {
    NoGradGuard no_grad;
    ref_out = lc.compose(x64, p64);
  }
  Tensor r32 = Tensor::randn(ref_out.shape(), rng);
  Tensor r64 = r32.to(DType::F64);
  std::vector<Tensor> inputs = {x64};
  inputs.insert(inputs.end(), p64.begin(), p64.end());
  const auto analytic = test::check_gradients(
      lc.name + " (f64 composition)", [&] { return test::weighted_sum(lc.compose(x64, p64), r64); },
      inputs);

  // 2. The layer's f32 forward is that composition.
  const double rtol = 2e-4;
  x32.set_requires_grad(true);
  for (NamedTensor& p : params) p.tensor.set_grad(Tensor());
  Tensor y32 = lc.layer->forward(x32);
  CHECK(y32.dtype() == DType::F32);
  REQUIRE(y32.shape() == ref_out.shape());
  const std::vector<double> want = ref_out.to_vector();
  check_close(y32, want, rtol * test::max_abs(want), rtol, lc.name + " f32 forward");

  // 3. Its f32 gradients match the f64 analytic ones.
  test::weighted_sum(y32, r32).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = i == 0 ? x32 : params[i - 1].tensor;
    const std::string what = i == 0 ? std::string("input") : params[i - 1].name;
    REQUIRE_MESSAGE(t.grad().defined(), lc.name, ": no gradient for ", what);
    CHECK(t.grad().dtype() == DType::F32);
    check_close(t.grad(), analytic[i], rtol * test::max_abs(analytic[i]), rtol,
                lc.name + " f32 gradient of " + what);
  }
}

TEST_CASE("layers: Conv2d, DepthwiseConv2d, PointwiseConv2d, DepSepConv2d, Linear, BatchNorm2d") {
  std::mt19937_64 rng(97);
  std::vector<LayerCase> cases;
  cases.push_back({"Conv2d 3->5 3x3 s1 p1 bias", std::make_shared<Conv2d>(3, 5, 3, Conv2dOptions{1, 1, true}, rng),
                   {2, 3, 7, 6},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], p[1], 1, 1);
                   }});
  cases.push_back({"Conv2d 5->7 3x3 s2 p0 no bias",
                   std::make_shared<Conv2d>(5, 7, 3, Conv2dOptions{2, 0, false}, rng),
                   {2, 5, 7, 8},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], Tensor(), 2, 0);
                   }});
  cases.push_back({"Conv2d 7->3 1x1 s1 p0 bias", std::make_shared<Conv2d>(7, 3, 1, Conv2dOptions{1, 0, true}, rng),
                   {3, 7, 5, 4},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], p[1], 1, 0);
                   }});
  cases.push_back({"DepthwiseConv2d 5 3x3 s1 p1 bias",
                   std::make_shared<DepthwiseConv2d>(5, 3, Conv2dOptions{1, 1, true}, rng),
                   {2, 5, 6, 7},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], p[1], 1, 1, 5);
                   }});
  cases.push_back({"DepthwiseConv2d 7 3x3 s2 p0 no bias",
                   std::make_shared<DepthwiseConv2d>(7, 3, Conv2dOptions{2, 0, false}, rng),
                   {2, 7, 7, 6},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], Tensor(), 2, 0, 7);
                   }});
  cases.push_back({"PointwiseConv2d 5->3 bias", std::make_shared<PointwiseConv2d>(5, 3, true, rng),
                   {2, 5, 4, 5},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], p[1], 1, 0);
                   }});
  cases.push_back({"PointwiseConv2d 3->5 no bias", std::make_shared<PointwiseConv2d>(3, 5, false, rng),
                   {2, 3, 4, 5},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(x, p[0], Tensor(), 1, 0);
                   }});
  // Keras' SeparableConv2D: depthwise (no bias, the layer's stride/padding), then 1x1 with bias.
  cases.push_back({"DepSepConv2d 3->5 3x3 s1 p1", std::make_shared<DepSepConv2d>(3, 5, 3, Conv2dOptions{1, 1, true}, rng),
                   {2, 3, 6, 7},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(ops::conv2d(x, p[0], Tensor(), 1, 1, 3), p[1], p[2], 1, 0);
                   }});
  cases.push_back({"DepSepConv2d 5->4 3x3 s2 p1", std::make_shared<DepSepConv2d>(5, 4, 3, Conv2dOptions{2, 1, true}, rng),
                   {2, 5, 7, 6},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::conv2d(ops::conv2d(x, p[0], Tensor(), 2, 1, 5), p[1], p[2], 1, 0);
                   }});
  // activation = ReLU (Keras' activation='relu'): the same ops followed by relu.
  const Conv2dOptions relu_same{1, 1, true, Activation::ReLU};
  cases.push_back({"Conv2d 3->5 3x3 s1 p1 relu", std::make_shared<Conv2d>(3, 5, 3, relu_same, rng),
                   {2, 3, 7, 6},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::relu(ops::conv2d(x, p[0], p[1], 1, 1));
                   }});
  cases.push_back({"DepthwiseConv2d 5 3x3 s1 p1 relu",
                   std::make_shared<DepthwiseConv2d>(5, 3, relu_same, rng), {2, 5, 6, 7},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::relu(ops::conv2d(x, p[0], p[1], 1, 1, 5));
                   }});
  cases.push_back({"DepSepConv2d 17->6 3x3 s1 p1 relu",
                   std::make_shared<DepSepConv2d>(17, 6, 3, relu_same, rng), {2, 17, 4, 8},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::relu(
                         ops::conv2d(ops::conv2d(x, p[0], Tensor(), 1, 1, 17), p[1], p[2], 1, 0));
                   }});
  cases.push_back({"Linear 7->4", std::make_shared<Linear>(7, 4, rng), {3, 7},
                   [](const Tensor& x, const std::vector<Tensor>& p) { return ops::linear(x, p[0], p[1]); }});
  cases.push_back({"Linear 6->5 no bias", std::make_shared<Linear>(6, 5, rng, false), {4, 6},
                   [](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::linear(x, p[0], Tensor());
                   }});
  // BatchNorm2d in training mode, Keras defaults.
  Tensor rm = Tensor::zeros({4}, DType::F64), rv = Tensor::full({4}, 1.0, DType::F64);
  cases.push_back({"BatchNorm2d 4 (training)", std::make_shared<BatchNorm2d>(4), {3, 4, 3, 2},
                   [&](const Tensor& x, const std::vector<Tensor>& p) {
                     return ops::batch_norm(x, p[0], p[1], rm, rv, true, 0.99f, 1e-3f);
                   }});
  for (const LayerCase& lc : cases) check_layer(lc, rng);
}

TEST_CASE("layers: initial values and parameter names") {
  std::mt19937_64 rng(3);
  Conv2d conv(3, 4, 3, {1, 1, true}, rng);
  CHECK(conv.weight.shape() == Shape{4, 3, 3, 3});
  CHECK(conv.bias.to_vector() == std::vector<double>(4, 0.0));  // Keras: zero bias
  CHECK(conv.describe() == "Conv2d(3 -> 4, 3x3, stride 1, pad 1, bias)");
  auto params = conv.parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "weight");
  CHECK(params[1].name == "bias");
  CHECK(params[0].tensor.id() == conv.weight.id());  // the same tensor, not a copy

  DepSepConv2d ds(3, 8, 3, {1, 1, true}, rng);
  auto dp = ds.parameters();
  REQUIRE(dp.size() == 3);
  CHECK(dp[0].name == "depthwise.weight");
  CHECK(dp[1].name == "pointwise.weight");
  CHECK(dp[2].name == "pointwise.bias");
  CHECK(dp[0].tensor.shape() == Shape{3, 1, 3, 3});
  CHECK(dp[1].tensor.shape() == Shape{8, 3, 1, 1});
  CHECK_FALSE(ds.depthwise->bias.defined());  // SeparableConv2D: no depthwise bias

  BatchNorm2d bn(6);
  CHECK(bn.gamma.to_vector() == std::vector<double>(6, 1.0));
  CHECK(bn.beta.to_vector() == std::vector<double>(6, 0.0));
  CHECK(bn.running_mean.to_vector() == std::vector<double>(6, 0.0));
  CHECK(bn.running_var.to_vector() == std::vector<double>(6, 1.0));
  auto bufs = bn.buffers();
  REQUIRE(bufs.size() == 2);
  CHECK(bufs[0].name == "running_mean");
  CHECK(bufs[1].name == "running_var");
  CHECK_FALSE(bufs[0].tensor.requires_grad());
  CHECK(count_parameters(bn).total == 24);
  CHECK(count_parameters(bn).trainable == 12);
  CHECK(count_parameters(bn).non_trainable() == 12);

  Sequential seq;
  seq.add("c", std::make_shared<Conv2d>(2, 3, 1, Conv2dOptions{1, 0, false}, rng));
  seq.add("bn", std::make_shared<BatchNorm2d>(3));
  auto sp = seq.parameters();
  REQUIRE(sp.size() == 3);
  CHECK(sp[0].name == "c.weight");
  CHECK(sp[1].name == "bn.gamma");
  CHECK(seq.buffers()[1].name == "bn.running_var");

  test::check_throws_with([&] { Conv2d(0, 4, 3, {}, rng); }, {"Conv2d", "in_channels"}, "0 channels");
  Linear fc(5, 2, rng);
  test::check_throws_with([&] { fc.forward(Tensor::zeros({3, 4})); }, {"Linear", "[3, 4]", "5"},
                          "Linear input");
}

TEST_CASE("layers: Sequential, ReLU, MaxPool2d, Flatten") {
  std::mt19937_64 rng(5);
  auto conv = std::make_shared<Conv2d>(2, 3, 3, Conv2dOptions{1, 1, true}, rng);
  conv->bias.copy_(Tensor::uniform({3}, rng, -1, 1));
  Sequential seq;
  seq.add("conv", conv);
  seq.add("relu", std::make_shared<ReLU>());
  seq.add("pool", std::make_shared<MaxPool2d>(2));  // stride defaults to the window
  seq.add("flat", std::make_shared<Flatten>());
  Tensor x = Tensor::uniform({2, 2, 6, 6}, rng, -1, 1);
  Tensor y = seq.forward(x);
  CHECK(y.shape() == Shape{2, 3 * 3 * 3});
  // The same chain by hand, with ops (exact: the same kernels in the same order).
  Tensor h = ops::conv2d(x, conv->weight, conv->bias, 1, 1);
  h = ops::max_pool2d(ops::relu(h), 2, 2);
  CHECK(y.to_vector() == h.to_vector());
  CHECK(MaxPool2d(3, 2).forward(x).shape() == Shape{2, 2, 2, 2});
  CHECK(MaxPool2d(3, 2).describe() == "MaxPool2d(3x3, stride 2)");
  test::check_throws_with([] { Flatten().forward(Tensor::zeros({4})); }, {"Flatten", "[4]"},
                          "Flatten rank 1");
}

TEST_CASE("layers: BatchNorm2d train vs eval, momentum and eps") {
  std::mt19937_64 rng(7);
  const int n = 4, c = 3, h = 2, w = 3;
  Tensor x = Tensor::randn({n, c, h, w}, rng, 2.0);
  const std::vector<double> xv = x.to_vector();

  SUBCASE("training normalises with batch statistics, eval with running statistics") {
    BatchNorm2d bn(c);
    bn.gamma.copy_(Tensor::from({0.5, 1.5, 2.0}, {3}));
    bn.beta.copy_(Tensor::from({0.1, -0.2, 0.3}, {3}));
    const auto g = bn.gamma.to_vector(), b = bn.beta.to_vector();
    CHECK(bn.training());
    Tensor yt = bn.forward(x);
    const auto want_t = test::ref::batch_norm_train(n, c, h * w, xv, g, b, {0, 0, 0}, {1, 1, 1},
                                                    0.99f, 1e-3f);
    check_close(yt, want_t.y, 2e-6, 2e-6, "train output");
    // Keras momentum 0.99 from (0, 1): running = 0.01 * batch mean, 0.99 + 0.01 * unbiased var.
    check_close(bn.running_mean, want_t.running_mean, 1e-7, 1e-6, "running mean");
    check_close(bn.running_var, want_t.running_var, 1e-7, 1e-6, "running var");
    const auto rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();

    bn.eval();
    CHECK_FALSE(bn.training());
    Tensor ye = bn.forward(x);
    check_close(ye, test::ref::batch_norm_eval(n, c, h * w, xv, g, b, rm, rv, 1e-3f), 2e-6, 2e-6,
                "eval output");
    CHECK(bn.running_mean.to_vector() == rm);  // eval leaves the statistics alone
    CHECK(bn.running_var.to_vector() == rv);
    // The two modes differ on the same input (batch mean ~ N(0, 4/24) != running mean ~ 0.01 x).
    double diff = 0;
    for (size_t i = 0; i < xv.size(); ++i) diff = std::max(diff, std::abs(yt.to_vector()[i] - ye.to_vector()[i]));
    CHECK(diff > 0.1);

    // Running statistics set by hand are what eval uses.
    bn.running_mean.copy_(Tensor::from({1.0, -1.0, 0.5}, {3}));
    bn.running_var.copy_(Tensor::from({4.0, 0.25, 1.0}, {3}));
    check_close(bn.forward(x),
                test::ref::batch_norm_eval(n, c, h * w, xv, g, b, {1.0, -1.0, 0.5}, {4.0, 0.25, 1.0}, 1e-3f),
                2e-6, 2e-6, "eval with set statistics");
    bn.train();
    CHECK(bn.training());
  }

  SUBCASE("momentum and eps are settable") {
    // A small variance makes eps matter: var ~ 1e-4, so eps 1e-5 vs 1e-3 changes y ~3x.
    Tensor xs = ops::scale(x, 0.005);
    const std::vector<double> xsv = xs.to_vector();
    BatchNorm2d bn(c, BatchNormOptions{0.9f, 1e-5f});
    CHECK(bn.describe() == "BatchNorm2d(3, momentum 0.9, eps 1e-05)");
    Tensor y = bn.forward(xs);
    const auto want = test::ref::batch_norm_train(n, c, h * w, xsv, {1, 1, 1}, {0, 0, 0}, {0, 0, 0},
                                                  {1, 1, 1}, 0.9f, 1e-5f);
    check_close(y, want.y, 2e-5, 2e-5, "eps 1e-5 output");
    check_close(bn.running_mean, want.running_mean, 1e-9, 1e-5, "momentum 0.9 running mean");
    check_close(bn.running_var, want.running_var, 1e-9, 1e-5, "momentum 0.9 running var");
    const auto keras = test::ref::batch_norm_train(n, c, h * w, xsv, {1, 1, 1}, {0, 0, 0},
                                                   {0, 0, 0}, {1, 1, 1}, 0.99f, 1e-3f);
    CHECK(std::abs(y.to_vector()[0] - keras.y[0]) > 0.1);  // the options really changed something
    test::check_throws_with([&] { BatchNorm2d(3, BatchNormOptions{1.5f, 1e-3f}); },
                            {"BatchNorm2d", "momentum"}, "momentum > 1");
    test::check_throws_with([&] { BatchNorm2d(3, BatchNormOptions{0.9f, 0.0f}); },
                            {"BatchNorm2d", "eps"}, "eps 0");
  }

  SUBCASE("train()/eval() reach nested modules") {
    Sequential seq;
    auto bn = seq.add("bn", std::make_shared<BatchNorm2d>(c));
    seq.eval();
    CHECK_FALSE(bn->training());
    const auto rm0 = bn->running_mean.to_vector();
    seq.forward(x);
    CHECK(bn->running_mean.to_vector() == rm0);
    seq.train();
    CHECK(bn->training());
    seq.forward(x);
    CHECK(bn->running_mean.to_vector() != rm0);
  }
}

TEST_CASE("layers: zero_grad and compute_view") {
  std::mt19937_64 rng(9);
  Linear fc(4, 3, rng);
  Tensor x = Tensor::uniform({2, 4}, rng, -1, 1);
  ops::sum(fc.forward(x)).backward();
  REQUIRE(fc.weight.grad().defined());
  CHECK(test::max_abs(fc.weight.grad().to_vector()) > 0);
  fc.zero_grad();
  CHECK(fc.weight.grad().to_vector() == std::vector<double>(12, 0.0));
  CHECK(fc.bias.grad().to_vector() == std::vector<double>(3, 0.0));

  // compute_view: the parameter itself for an f32 input, a differentiable f16 cast for f16.
  CHECK(compute_view(fc.weight, x).id() == fc.weight.id());
  Tensor x16 = x.to(DType::F16);
  Tensor w16 = compute_view(fc.weight, x16);
  CHECK(w16.dtype() == DType::F16);
  REQUIRE(w16.grad_fn() != nullptr);
  CHECK(std::string(w16.grad_fn()->name()) == "cast");
  CHECK_FALSE(compute_view(Tensor(), x16).defined());
}

}  // namespace
}  // namespace dsc
