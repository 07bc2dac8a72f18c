// Backward of every op (core/ops.h) against central finite differences in f64 (check.h), with the
// loss sum(op(...) * R) for a fixed random R, random inputs (never zeros), batch > 1:
//   |analytic - numeric| <= 1e-6 + 1e-5 * max(|analytic|, |numeric|),  h = 1e-6.
// With h = 1e-6 the central difference's truncation error is O(h^2) ~ 1e-12 and its rounding
// error ~ 1e-16 * |loss| / h ~ 1e-9 for losses of O(10): both far below the threshold, while a
// wrong rule (a missing term, a transposed index) is off by O(|gradient|).
// Kinks: relu inputs are kept at |x| >= 0.05; max-pool elements whose window's two largest values
// are within 1e-3 are skipped (Caffe's GradientChecker does the same).
// The exported checker itself (core/grad_check.h) must pass a right gradient and report wrong and
// zero ones, and refuse inputs it cannot perturb.
// Then the f32 backward of conv2d (Winograd, GEMM, depthwise paths; f64 never takes Winograd) is
// compared with the f64 analytic gradients, with the f32 forward tolerances of
// test_ops_forward.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "core/function.h"
#include "core/grad_check.h"

namespace dsc {
namespace {

using test::check_gradients;
using test::GradCheckOptions;
using test::weighted_sum;

Tensor leaf_uniform(const Shape& s, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  Tensor t = Tensor::uniform(s, rng, lo, hi, DType::F64);
  t.set_requires_grad(true);
  return t;
}

GradCheckOptions samples(int n) {
  GradCheckOptions o;
  o.max_samples = n;
  return o;
}

struct ConvGradCase {
  int n, c, k, h, w, r, stride, pad;
  bool depthwise, bias;
};

std::string name_of(const ConvGradCase& g) {
  std::ostringstream os;
  os << (g.depthwise ? "depthwise" : "conv2d") << " N" << g.n << " C" << g.c << " K" << g.k << " "
     << g.h << "x" << g.w << " k" << g.r << " s" << g.stride << " p" << g.pad
     << (g.bias ? " bias" : "");
  return os.str();
}

const std::vector<ConvGradCase> kConvGradCases = {
    {2, 3, 5, 6, 7, 3, 1, 1, false, true},   // f32: Winograd
    {2, 5, 3, 7, 5, 3, 1, 0, false, true},   // f32: Winograd, valid
    {2, 7, 4, 7, 6, 3, 2, 1, false, true},   // im2col, stride 2
    {3, 3, 5, 6, 5, 3, 2, 0, false, false},  // im2col, stride 2, valid, no bias
    {2, 5, 7, 4, 5, 1, 1, 0, false, true},   // pointwise
    {2, 3, 5, 5, 6, 1, 2, 0, false, true},   // 1x1 stride 2
    {2, 3, 3, 6, 7, 3, 1, 1, true, true},    // depthwise
    {2, 5, 5, 7, 5, 3, 1, 0, true, false},
    {2, 7, 7, 7, 6, 3, 2, 1, true, true},
    {3, 5, 5, 6, 7, 3, 2, 0, true, true},
};

TEST_CASE("grad: conv2d (normal and depthwise) w.r.t. x, w, b") {
  std::mt19937_64 rng(31);
  for (const ConvGradCase& g : kConvGradCases) {
    const int cin = g.depthwise ? 1 : g.c;
    Tensor x = leaf_uniform({g.n, g.c, g.h, g.w}, rng);
    Tensor w = leaf_uniform({g.k, cin, g.r, g.r}, rng);
    Tensor b = g.bias ? leaf_uniform({g.k}, rng) : Tensor();
    const int groups = g.depthwise ? g.c : 1;
    const int p = (g.h + 2 * g.pad - g.r) / g.stride + 1, q = (g.w + 2 * g.pad - g.r) / g.stride + 1;
    Tensor r = Tensor::randn({g.n, g.k, p, q}, rng, 1.0, DType::F64);
    auto loss = [&] { return weighted_sum(ops::conv2d(x, w, b, g.stride, g.pad, groups), r); };
    const std::vector<Tensor> inputs =
        g.bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w};
    check_gradients(name_of(g), loss, inputs, samples(60));
  }
}

TEST_CASE("grad: conv2d in f32 (Winograd / GEMM / depthwise) matches the f64 gradients") {
  std::mt19937_64 rng(37);
  std::vector<ConvGradCase> cases = kConvGradCases;
  cases.push_back({2, 13, 16, 11, 9, 3, 1, 1, false, true});  // Winograd, more tiles and channels
  for (const ConvGradCase& g : cases) {
    const int cin = g.depthwise ? 1 : g.c;
    const int groups = g.depthwise ? g.c : 1;
    const int p = (g.h + 2 * g.pad - g.r) / g.stride + 1, q = (g.w + 2 * g.pad - g.r) / g.stride + 1;
    Tensor x32 = Tensor::uniform({g.n, g.c, g.h, g.w}, rng, -1, 1);
    Tensor w32 = Tensor::uniform({g.k, cin, g.r, g.r}, rng, -1, 1);
    Tensor b32 = Tensor::uniform({g.k}, rng, -1, 1);
    Tensor r32 = Tensor::randn({g.n, g.k, p, q}, rng);
    Tensor x64 = test::f64_leaf(x32), w64 = test::f64_leaf(w32), b64 = test::f64_leaf(b32);
    weighted_sum(ops::conv2d(x64, w64, b64, g.stride, g.pad, groups), r32.to(DType::F64)).backward();
    x32.set_requires_grad(true);
    w32.set_requires_grad(true);
    b32.set_requires_grad(true);
    weighted_sum(ops::conv2d(x32, w32, b32, g.stride, g.pad, groups), r32).backward();
    const bool winograd = !g.depthwise && g.r == 3 && g.stride == 1;
    const double rtol = winograd ? 2e-4 : 1e-4;
    for (auto [t32, t64, what] : {std::tuple{x32, x64, "dx"}, std::tuple{w32, w64, "dw"},
                                  std::tuple{b32, b64, "db"}}) {
      REQUIRE(t32.grad().defined());
      CHECK(t32.grad().dtype() == DType::F32);
      const std::vector<double> want = t64.grad().to_vector();
      const double scale = test::max_abs(want);
      REQUIRE(scale > 0.1);
      test::check_close(t32.grad(), want, rtol * scale, rtol, name_of(g) + " f32 " + what);
    }
  }
}

struct DepSepGradCase {
  int n, c, k, h, w, r, stride, pad;
  bool bias, relu;
};

std::string name_of(const DepSepGradCase& g) {
  std::ostringstream os;
  os << "depsep_conv2d N" << g.n << " C" << g.c << " K" << g.k << " " << g.h << "x" << g.w << " k"
     << g.r << " s" << g.stride << " p" << g.pad << (g.bias ? " bias" : "")
     << (g.relu ? " relu" : "");
  return os.str();
}

// The pre-activation of depsep_conv2d, to keep gradient checks away from the ReLU kink.
double min_abs_preactivation(const Tensor& x, const Tensor& wd, const Tensor& wp, const Tensor& b,
                             const DepSepGradCase& g) {
  NoGradGuard no_grad;
  const std::vector<double> z =
      ops::depsep_conv2d(x, wd, wp, b, g.stride, g.pad, false).to_vector();
  double m = 1e30;
  for (double v : z) m = std::min(m, std::abs(v));
  return m;
}

TEST_CASE("grad: depsep_conv2d (fused) w.r.t. x, both weights and b, with and without ReLU") {
  const std::vector<DepSepGradCase> cases = {
      {2, 3, 5, 6, 7, 3, 1, 1, true, true},   {2, 5, 4, 7, 5, 3, 1, 0, false, true},
      {2, 4, 6, 7, 6, 3, 2, 1, true, false},  {3, 5, 3, 6, 7, 3, 2, 0, true, true},
      {2, 17, 5, 4, 8, 3, 1, 1, true, true},  // C >= 16, PQ % 32 == 0 (f32 micro-kernel shape)
  };
  std::mt19937_64 rng(41);
  for (const DepSepGradCase& g : cases) {
    Tensor x = leaf_uniform({g.n, g.c, g.h, g.w}, rng);
    Tensor wd = leaf_uniform({g.c, 1, g.r, g.r}, rng);
    Tensor wp = leaf_uniform({g.k, g.c, 1, 1}, rng);
    Tensor b = g.bias ? leaf_uniform({g.k}, rng) : Tensor();
    if (g.relu) REQUIRE(min_abs_preactivation(x, wd, wp, b, g) > 1e-3);
    const int p = (g.h + 2 * g.pad - g.r) / g.stride + 1, q = (g.w + 2 * g.pad - g.r) / g.stride + 1;
    Tensor r = Tensor::randn({g.n, g.k, p, q}, rng, 1.0, DType::F64);
    auto loss = [&] {
      return weighted_sum(ops::depsep_conv2d(x, wd, wp, b, g.stride, g.pad, g.relu), r);
    };
    const std::vector<Tensor> inputs =
        g.bias ? std::vector<Tensor>{x, wd, wp, b} : std::vector<Tensor>{x, wd, wp};
    check_gradients(name_of(g), loss, inputs, samples(60));
  }
}

TEST_CASE("grad: depsep_conv2d in f32 matches depthwise conv2d, pointwise conv2d and relu") {
  // The fused op against the three unfused ops it replaces: outputs and all four gradients.
  std::mt19937_64 rng(43);
  for (const DepSepGradCase& g : std::vector<DepSepGradCase>{{3, 16, 24, 8, 8, 3, 1, 1, true, true},
                                                             {2, 3, 16, 9, 7, 3, 1, 1, true, true},
                                                             {2, 7, 5, 9, 8, 3, 2, 0, false, false}}) {
    Tensor x = Tensor::uniform({g.n, g.c, g.h, g.w}, rng, -1, 1);
    Tensor wd = Tensor::uniform({g.c, 1, g.r, g.r}, rng, -1, 1);
    Tensor wp = Tensor::uniform({g.k, g.c, 1, 1}, rng, -1, 1);
    Tensor b = g.bias ? Tensor::uniform({g.k}, rng, -1, 1) : Tensor();
    const int p = (g.h + 2 * g.pad - g.r) / g.stride + 1, q = (g.w + 2 * g.pad - g.r) / g.stride + 1;
    Tensor r = Tensor::randn({g.n, g.k, p, q}, rng);
    std::vector<Tensor> leaves = {x, wd, wp, b};
    auto fresh = [&] {
      std::vector<Tensor> out;
      for (const Tensor& t : leaves) {
        Tensor c = t.defined() ? t.clone() : Tensor();
        if (c.defined()) c.set_requires_grad(true);
        out.push_back(c);
      }
      return out;
    };
    std::vector<Tensor> f = fresh(), u = fresh();
    Tensor yf = ops::depsep_conv2d(f[0], f[1], f[2], f[3], g.stride, g.pad, g.relu);
    Tensor yu = ops::conv2d(ops::conv2d(u[0], u[1], Tensor(), g.stride, g.pad, g.c), u[2], u[3], 1, 0);
    if (g.relu) yu = ops::relu(yu);
    const std::vector<double> want = yu.detach().to_vector();
    test::check_close(yf.detach(), want, 1e-5 * test::max_abs(want), 1e-5, name_of(g) + " forward");
    weighted_sum(yf, r).backward();
    weighted_sum(yu, r).backward();
    const char* what[] = {"dx", "d depthwise w", "d pointwise w", "db"};
    for (int i = 0; i < 4; ++i) {
      if (!leaves[i].defined()) continue;
      const std::vector<double> gu = u[i].grad().to_vector();
      test::check_close(f[i].grad(), gu, 1e-4 * test::max_abs(gu), 1e-4, name_of(g) + " " + what[i]);
    }
  }
}

TEST_CASE("grad: linear w.r.t. x, w, b") {
  std::mt19937_64 rng(41);
  for (bool bias : {true, false}) {
    Tensor x = leaf_uniform({4, 7}, rng), w = leaf_uniform({5, 7}, rng);
    Tensor b = bias ? leaf_uniform({5}, rng) : Tensor();
    Tensor r = Tensor::randn({4, 5}, rng, 1.0, DType::F64);
    const std::vector<Tensor> inputs = bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w};
    check_gradients(bias ? "linear" : "linear (no bias)",
                    [&] { return weighted_sum(ops::linear(x, w, b), r); }, inputs);
  }
}

TEST_CASE("grad: batch_norm (training) w.r.t. x, gamma, beta") {
  std::mt19937_64 rng(43);
  for (auto [n, c, h, w] : {std::tuple{3, 4, 3, 2}, std::tuple{2, 3, 5, 4}}) {
    Tensor x = leaf_uniform({n, c, h, w}, rng, -2, 3);
    Tensor gamma = leaf_uniform({c}, rng, 0.5, 2.0);
    Tensor beta = leaf_uniform({c}, rng);
    Tensor rm = Tensor::zeros({c}, DType::F64), rv = Tensor::full({c}, 1.0, DType::F64);
    Tensor r = Tensor::randn({n, c, h, w}, rng, 1.0, DType::F64);
    auto loss = [&] {
      return weighted_sum(ops::batch_norm(x, gamma, beta, rm, rv, true, 0.99f, 1e-3f), r);
    };
    check_gradients("batch_norm train", loss, {x, gamma, beta});
  }
}

TEST_CASE("grad: cross_entropy (mean over the batch, upstream gradient != 1)") {
  std::mt19937_64 rng(47);
  Tensor z = Tensor::randn({5, 7}, rng, 2.0, DType::F64);
  z.set_requires_grad(true);
  Tensor labels = test::random_labels(5, 7, rng);
  check_gradients("cross_entropy", [&] { return ops::scale(ops::cross_entropy(z, labels), 1.7); },
                  {z});
  // Large logits: the gradient is still finite and correct.
  Tensor big = Tensor::randn({3, 4}, rng, 1.0, DType::F64);
  std::vector<double> bv = big.to_vector();
  for (double& v : bv) v += 1000;
  Tensor zb = Tensor::from(bv, {3, 4}, DType::F64);
  zb.set_requires_grad(true);
  Tensor lb = test::random_labels(3, 4, rng);
  check_gradients("cross_entropy, logits ~1000", [&] { return ops::cross_entropy(zb, lb); }, {zb});
}

// Elements of x lying in a pooling window whose two largest values are within `margin`.
std::set<int64_t> pool_kinks(const std::vector<double>& x, int planes, int h, int w, int k, int st,
                             double margin) {
  std::set<int64_t> out;
  const int P = (h - k) / st + 1, Q = (w - k) / st + 1;
  for (int pl = 0; pl < planes; ++pl)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q) {
        double a = -HUGE_VAL, b = -HUGE_VAL;  // largest, second largest
        for (int i = 0; i < k; ++i)
          for (int j = 0; j < k; ++j) {
            const double v = x[(size_t(pl) * h + p * st + i) * w + q * st + j];
            if (v > a) {
              b = a;
              a = v;
            } else if (v > b) {
              b = v;
            }
          }
        if (a - b < margin)
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) out.insert((int64_t(pl) * h + p * st + i) * w + q * st + j);
      }
  return out;
}

TEST_CASE("grad: max_pool2d (skipping near-ties)") {
  std::mt19937_64 rng(53);
  struct Case {
    int h, w, k, st;
  };
  for (const Case& cs : {Case{8, 8, 4, 4}, Case{6, 7, 2, 2}, Case{7, 9, 3, 2}}) {
    const int n = 2, c = 3;
    Tensor x = leaf_uniform({n, c, cs.h, cs.w}, rng);
    const int P = (cs.h - cs.k) / cs.st + 1, Q = (cs.w - cs.k) / cs.st + 1;
    Tensor r = Tensor::randn({n, c, P, Q}, rng, 1.0, DType::F64);
    const std::set<int64_t> kinks = pool_kinks(x.to_vector(), n * c, cs.h, cs.w, cs.k, cs.st, 1e-3);
    GradCheckOptions opt;
    opt.max_samples = 1 << 20;  // every element: most have zero gradient
    opt.skip = [&](size_t, int64_t i) { return kinks.count(i) > 0; };
    const auto g = check_gradients("max_pool2d k" + std::to_string(cs.k) + " s" + std::to_string(cs.st),
                                   [&] { return weighted_sum(ops::max_pool2d(x, cs.k, cs.st), r); },
                                   {x}, opt);
    // Overlapping windows (3x3 stride 2) can route two gradients to one element: the count of
    // non-zero gradient entries is at most the number of windows.
    int64_t nonzero = 0;
    for (double v : g[0]) nonzero += v != 0;
    CHECK(nonzero <= int64_t(n) * c * P * Q);
    CHECK(nonzero > 0);
  }
  // Ties route the gradient to the FIRST maximum of the window (row-major), once.
  Tensor t = Tensor::from({1, 5, 5, 2}, {1, 1, 2, 2}, DType::F64);
  t.set_requires_grad(true);
  ops::sum(ops::scale(ops::max_pool2d(t, 2, 2), 3.0)).backward();
  CHECK(t.grad().to_vector() == std::vector<double>{0, 3, 0, 0});
}

TEST_CASE("grad: relu (inputs away from the kink)") {
  std::mt19937_64 rng(59);
  Tensor x = test::away_from_zero({2, 3, 4, 5}, rng, 0.05, 1.0);
  x.set_requires_grad(true);
  Tensor r = Tensor::randn({2, 3, 4, 5}, rng, 1.0, DType::F64);
  check_gradients("relu", [&] { return weighted_sum(ops::relu(x), r); }, {x},
                  samples(120));
}

TEST_CASE("grad: reshape, add, mul, scale, sum") {
  std::mt19937_64 rng(61);
  Tensor x = leaf_uniform({2, 3, 4, 5}, rng);
  Tensor r = Tensor::randn({6, 20}, rng, 1.0, DType::F64);
  check_gradients("reshape", [&] { return weighted_sum(ops::reshape(x, {6, -1}), r); }, {x},
                  samples(120));

  Tensor a = leaf_uniform({3, 4}, rng), b = leaf_uniform({3, 4}, rng);
  Tensor r2 = Tensor::randn({3, 4}, rng, 1.0, DType::F64);
  check_gradients("add", [&] { return weighted_sum(ops::add(a, b), r2); }, {a, b});
  check_gradients("add(a * b, a)", [&] { return weighted_sum(ops::add(ops::mul(a, b), a), r2); },
                  {a, b});
  check_gradients("mul", [&] { return weighted_sum(ops::mul(a, b), r2); }, {a, b});
  check_gradients("mul(a, a)", [&] { return weighted_sum(ops::mul(a, a), r2); }, {a});
  check_gradients("scale", [&] { return weighted_sum(ops::scale(a, -2.5), r2); }, {a});
  check_gradients("sum (upstream 1.3)", [&] { return ops::scale(ops::sum(ops::mul(a, b)), 1.3); },
                  {a, b});
}

TEST_CASE("grad: cast passes the gradient back in the input's dtype") {
  std::mt19937_64 rng(67);
  // f32 -> f16: d sum(cast(x) * r) / dx = r (f16 values, exact in f32), as f32.
  Tensor x = Tensor::uniform({4, 5}, rng, -1, 1);
  x.set_requires_grad(true);
  Tensor r16 = Tensor::uniform({4, 5}, rng, -2, 2, DType::F16);
  Tensor h = ops::cast(x, DType::F16);
  CHECK(h.dtype() == DType::F16);
  ops::sum(ops::mul(h, r16)).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::F32);
  CHECK(x.grad().to_vector() == r16.to_vector());
  // f64 -> f32 -> f64 round trip through two casts: the gradient is r rounded to f32.
  Tensor y = leaf_uniform({6}, rng);
  Tensor r = Tensor::randn({6}, rng, 1.0, DType::F32);
  ops::sum(ops::mul(ops::cast(y, DType::F32), r)).backward();
  CHECK(y.grad().dtype() == DType::F64);
  CHECK(y.grad().to_vector() == r.to_vector());
}

TEST_CASE("grad: a small network end to end (conv, relu, pool, reshape, linear, cross-entropy)") {
  std::mt19937_64 rng(71);
  Tensor x = leaf_uniform({3, 2, 6, 6}, rng);
  Tensor w1 = leaf_uniform({4, 2, 3, 3}, rng, -0.5, 0.5), b1 = leaf_uniform({4}, rng, -0.2, 0.2);
  Tensor wd = leaf_uniform({4, 1, 3, 3}, rng, -0.5, 0.5);
  Tensor w2 = leaf_uniform({5, 4 * 3 * 3}, rng, -0.5, 0.5), b2 = leaf_uniform({5}, rng);
  Tensor labels = test::random_labels(3, 5, rng);
  auto loss = [&] {
    Tensor h = ops::relu(ops::conv2d(x, w1, b1, 1, 1));
    h = ops::conv2d(h, wd, Tensor(), 1, 1, 4);
    h = ops::max_pool2d(h, 2, 2);
    h = ops::reshape(h, {3, -1});
    return ops::cross_entropy(ops::linear(h, w2, b2), labels);
  };
  check_gradients("network", loss, {x, w1, b1, wd, w2, b2}, samples(40));
}

// y = 3 x with a backward that is right, off by a factor, or zero: what the exported checker
// must tell apart.
int g_backward_kind = 0;
struct Triple : Function {
  static constexpr const char* name = "triple";
  Tensor forward(const Tensor& x) { return ops::scale(x, 3.0); }
  std::vector<Tensor> backward(const Tensor& dy) {
    return {ops::scale(dy, g_backward_kind == 0 ? 3.0 : g_backward_kind == 1 ? 3.01 : 0.0)};
  }
};

TEST_CASE("grad_check: the exported checker passes right gradients and reports wrong ones") {
  std::mt19937_64 rng(91);
  const Tensor x = leaf_uniform({4, 30}, rng);  // 120 elements: 80 sampled
  // A non-scalar output is reduced to sum(y * R) with a fixed random R.
  g_backward_kind = 0;
  GradCheckResult ok = grad_check([&] { return apply<Triple>(x); }, {x});
  CHECK_MESSAGE(ok.passed, ok.message);
  CHECK(ok.message.find("passed") != std::string::npos);
  REQUIRE(ok.inputs.size() == 1);
  CHECK(ok.inputs[0].checked == 80);
  CHECK(ok.inputs[0].bad == 0);
  CHECK(ok.inputs[0].analytic.size() == 120);
  CHECK(ok.max_rel_error < 1e-7);
  CHECK(ok.inputs[0].max_abs_analytic > 0.1);

  g_backward_kind = 1;  // 0.3% off: far outside rtol 1e-5
  GradCheckResult off = grad_check([&] { return apply<Triple>(x); }, {x});
  CHECK_FALSE(off.passed);
  CHECK(off.inputs[0].bad == 80);
  CHECK(off.max_rel_error == doctest::Approx(0.01 / 3.01).epsilon(1e-4));
  CHECK(off.inputs[0].worst_analytic == doctest::Approx(off.inputs[0].worst_numeric * 3.01 / 3));
  for (const char* part : {"gradient check failed", "input 0 f64[4, 30] cpu", "80 of 80",
                           "disagree", "worst at", "analytic", "numeric"})
    CHECK_MESSAGE(off.message.find(part) != std::string::npos, off.message, " lacks ", part);

  g_backward_kind = 2;  // zero gradient where the true one is 3 r: every element disagrees
  CHECK_FALSE(grad_check([&] { return apply<Triple>(x); }, {x}).passed);
  // A loss that does not depend on x at all has a zero gradient, which cannot show anything.
  g_backward_kind = 0;
  const Tensor z = leaf_uniform({3}, rng);
  GradCheckResult flat = grad_check([&] { return ops::scale(apply<Triple>(x), 0.0); }, {x});
  CHECK_FALSE(flat.passed);
  CHECK(flat.message.find("zero everywhere") != std::string::npos);
  // Inputs it cannot perturb, and inputs the function does not read, are errors.
  test::check_throws_with([&] { grad_check([&] { return ops::sum(x); }, {x.detach()}); },
                          {"grad_check", "input 0", "requires grad"}, "a constant input");
  Tensor f32 = Tensor::zeros({3});
  f32.set_requires_grad(true);
  test::check_throws_with([&] { grad_check([&] { return ops::sum(f32); }, {f32}); },
                          {"grad_check", "f32[3] cpu", "f64"}, "an f32 input");
  test::check_throws_with([&] { grad_check([&] { return ops::sum(apply<Triple>(x)); }, {x, z}); },
                          {"no gradient reached input 1"}, "an unused input");
}

}  // namespace
}  // namespace dsc
