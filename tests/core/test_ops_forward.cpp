// Forward of every op (core/ops.h) against the naive double references of reference.h, in f32 and
// f64, plus the kernel table's saved batch-norm statistics and the elementwise raw kernels.
//
// Tolerances. f64: atol = rtol = 1e-10 (the references differ only in summation order).
// f32 convolution / linear: |y - ref| <= rtol * (|ref| + max|ref|) with rtol = 2e-4 for the
// Winograd F(4x4, 3x3) path (3x3, stride 1) and 1e-4 otherwise: the inputs are f32 values (exact
// in double), so the error is the kernel's own rounding. GEMM/direct sums of C*R*S <= 200 products
// of O(1) values err by a few ulps of the output scale (~1e-6 relative to max|ref|); Winograd's
// transforms mix 6x6 tiles with coefficients up to ~8 before the reduction, so its error is a few
// ulps of the LARGEST outputs (measured ~1e-6 .. 1e-5 of max|ref|, see tests/kernels/). Both bounds
// leave >10x margin yet catch any wrong tap, offset or padding (errors of O(max|ref|)).
// relu, max-pool, mul, reshape and casts are exact.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/backend.h"
#include "core/cpu/elementwise.h"
#include "core/half.h"
#include "reference.h"

namespace dsc {
namespace {

using test::check_close;
namespace ref = test::ref;

struct ConvCase {
  int c, k, h, w, r, stride, pad;
  bool depthwise, bias;
};

std::string conv_name(const ConvCase& cc, DType t) {
  std::ostringstream os;
  os << (cc.depthwise ? "depthwise" : "conv") << " C" << cc.c << " K" << cc.k << " " << cc.h << "x"
     << cc.w << " k" << cc.r << " s" << cc.stride << " p" << cc.pad << (cc.bias ? " bias" : "")
     << " " << dtype_name(t);
  return os.str();
}

// Normal and depthwise convolutions: odd sizes, channels not multiples of 8, kernel 1 and 3,
// stride 1 and 2, padding 0 and 1, with and without bias. Cases with 3x3 stride 1 take the
// Winograd path in f32; 1x1 stride 1 pad 0 the pointwise GEMM; the rest im2col + GEMM.
const std::vector<ConvCase> kConvCases = {
    {3, 5, 7, 9, 3, 1, 1, false, true},     // Winograd, 'same'
    {5, 13, 7, 9, 3, 1, 0, false, false},   // Winograd, 'valid'
    {13, 16, 17, 13, 3, 1, 1, false, true}, // Winograd, several tiles, partial tiles
    {13, 3, 9, 7, 3, 2, 1, false, true},    // im2col, stride 2
    {5, 7, 8, 9, 3, 2, 0, false, false},    // im2col, stride 2, valid
    {3, 8, 7, 9, 1, 1, 0, false, true},     // pointwise
    {5, 7, 7, 9, 1, 2, 0, false, true},     // 1x1 stride 2
    {7, 5, 7, 9, 1, 1, 1, false, false},    // 1x1 with padding
    {3, 3, 7, 9, 3, 1, 1, true, true},      // depthwise
    {5, 5, 7, 9, 3, 1, 0, true, false},
    {13, 13, 9, 7, 3, 2, 1, true, true},
    {5, 5, 8, 9, 3, 2, 0, true, false},
    {13, 13, 7, 9, 1, 1, 0, true, true},    // depthwise 1x1
};

TEST_CASE("forward: conv2d (normal and depthwise) matches the naive reference") {
  std::mt19937_64 rng(101);
  for (const ConvCase& cc : kConvCases) {
    const int n = 2;
    const ref::ConvDims d{n, cc.c, cc.h, cc.w, cc.k, cc.r, cc.r, cc.stride, cc.pad, cc.depthwise};
    const int cin = cc.depthwise ? 1 : cc.c;
    // f32 values (so the f32 run sees exactly the reference's inputs).
    Tensor x32 = Tensor::uniform({n, cc.c, cc.h, cc.w}, rng, -1, 1);
    Tensor w32 = Tensor::uniform({cc.k, cin, cc.r, cc.r}, rng, -1, 1);
    Tensor b32 = cc.bias ? Tensor::uniform({cc.k}, rng, -1, 1) : Tensor();
    const std::vector<double> x = x32.to_vector(), w = w32.to_vector();
    const std::vector<double> b = cc.bias ? b32.to_vector() : std::vector<double>();
    const std::vector<double> want = ref::conv2d(d, x, w, cc.bias ? &b : nullptr);
    const double scale = test::max_abs(want);
    REQUIRE(scale > 0.5);
    const int groups = cc.depthwise ? cc.c : 1;

    Tensor y32 = ops::conv2d(x32, w32, b32, cc.stride, cc.pad, groups);
    CHECK(y32.shape() == Shape{n, cc.k, d.p(), d.q()});
    CHECK(y32.dtype() == DType::F32);
    const bool winograd = !cc.depthwise && cc.r == 3 && cc.stride == 1;
    const double rtol = winograd ? 2e-4 : 1e-4;
    check_close(y32, want, rtol * scale, rtol, conv_name(cc, DType::F32));

    Tensor y64 = ops::conv2d(x32.to(DType::F64), w32.to(DType::F64),
                             cc.bias ? b32.to(DType::F64) : Tensor(), cc.stride, cc.pad, groups);
    CHECK(y64.dtype() == DType::F64);
    check_close(y64, want, 1e-10, 1e-10, conv_name(cc, DType::F64));
  }
}

TEST_CASE("forward: conv2d at the seed's shape (C = K = 128, 3x3 'same') stays accurate") {
  // The benchmark layer, small batch and image: Winograd with a 1152-long reduction. The error is
  // bounded relative to the sum of |x| |w| of each output (the natural scale of a dot product's
  // rounding error): 2e-5 of it is ~170 f32 ulps.
  std::mt19937_64 rng(7);
  const ref::ConvDims d{1, 128, 12, 12, 128, 3, 3, 1, 1, false};
  Tensor x = Tensor::uniform({1, 128, 12, 12}, rng, -1, 1);
  Tensor w = Tensor::uniform({128, 128, 3, 3}, rng, -0.05, 0.05);
  Tensor b = Tensor::uniform({128}, rng, -0.1, 0.1);
  const auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  const auto want = ref::conv2d(d, xv, wv, &bv);
  const auto mag = ref::conv2d_abs(d, xv, wv, &bv);
  const auto got = ops::conv2d(x, w, b, 1, 1).to_vector();
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += !(std::abs(got[i] - want[i]) <= 2e-5 * mag[i]);
  CHECK(bad == 0);
}

TEST_CASE("forward: linear matches the reference") {
  std::mt19937_64 rng(5);
  for (bool bias : {true, false}) {
    const int n = 3, in = 13, out = 5;
    Tensor x = Tensor::uniform({n, in}, rng, -1, 1);
    Tensor w = Tensor::uniform({out, in}, rng, -1, 1);
    Tensor b = bias ? Tensor::uniform({out}, rng, -1, 1) : Tensor();
    const auto bv = bias ? b.to_vector() : std::vector<double>();
    const auto want = ref::linear(n, in, out, x.to_vector(), w.to_vector(), bias ? &bv : nullptr);
    const double scale = test::max_abs(want);
    Tensor y = ops::linear(x, w, b);
    CHECK(y.shape() == Shape{n, out});
    check_close(y, want, 1e-5 * scale, 1e-5, bias ? "linear f32 bias" : "linear f32");
    Tensor y64 = ops::linear(x.to(DType::F64), w.to(DType::F64), bias ? b.to(DType::F64) : Tensor());
    check_close(y64, want, 1e-10, 1e-10, bias ? "linear f64 bias" : "linear f64");
  }
}

TEST_CASE("forward: relu is exact") {
  std::mt19937_64 rng(9);
  for (DType t : {DType::F32, DType::F64}) {
    Tensor x = Tensor::uniform({2, 3, 5, 7}, rng, -1, 1, t);
    const auto want = ref::relu(x.to_vector());
    Tensor y = ops::relu(x);
    CHECK(y.dtype() == t);
    CHECK(y.to_vector() == want);
  }
  Tensor special = Tensor::from({-0.0, 0.0, -1e-30, 1e-30, -INFINITY, INFINITY}, {6});
  CHECK(ops::relu(special).to_vector() == std::vector<double>{0, 0, 0, 1e-30f, 0, INFINITY});
}

TEST_CASE("forward: max_pool2d is exact") {
  struct Case {
    int h, w, k, st;
  };
  std::mt19937_64 rng(13);
  for (const Case& cs : {Case{8, 8, 4, 4}, Case{9, 11, 4, 4}, Case{8, 10, 2, 2}, Case{7, 9, 2, 2},
                         Case{7, 9, 3, 2}, Case{8, 8, 3, 2}, Case{5, 6, 3, 1}}) {
    for (DType t : {DType::F32, DType::F64}) {
      const int n = 2, c = 3;
      Tensor x = Tensor::randn({n, c, cs.h, cs.w}, rng, 1.0, t);
      Tensor y = ops::max_pool2d(x, cs.k, cs.st);
      const int P = (cs.h - cs.k) / cs.st + 1, Q = (cs.w - cs.k) / cs.st + 1;
      CHECK(y.shape() == Shape{n, c, P, Q});
      CHECK_MESSAGE(y.to_vector() == ref::max_pool2d(n, c, cs.h, cs.w, cs.k, cs.st, x.to_vector()),
                    "pool ", cs.h, "x", cs.w, " k", cs.k, " s", cs.st, " ", dtype_name(t));
    }
  }
}

TEST_CASE("forward: batch_norm training (output, saved statistics, running update)") {
  std::mt19937_64 rng(17);
  const int n = 3, c = 5, h = 4, w = 3;
  for (DType t : {DType::F32, DType::F64}) {
    // Per-channel offsets and scales so that mean and variance matter.
    Tensor x = Tensor::randn({n, c, h, w}, rng, 1.0, t);
    std::vector<double> xv = x.to_vector();
    for (size_t i = 0; i < xv.size(); ++i) xv[i] = xv[i] * (1 + (i / (h * w)) % c) + 2.0;
    x = Tensor::from(xv, {n, c, h, w}, t);
    xv = x.to_vector();
    Tensor gamma = Tensor::uniform({c}, rng, 0.5, 1.5, t);
    Tensor beta = Tensor::uniform({c}, rng, -1, 1, t);
    Tensor rm = Tensor::uniform({c}, rng, -1, 1, t);
    Tensor rv = Tensor::uniform({c}, rng, 0.5, 2, t);
    const auto rm0 = rm.to_vector(), rv0 = rv.to_vector();
    const double momentum = 0.99, eps = 1e-3;
    const ref::BatchNormResult want = ref::batch_norm_train(
        n, c, h * w, xv, gamma.to_vector(), beta.to_vector(), rm0, rv0, float(momentum), float(eps));
    const double tol = t == DType::F64 ? 1e-10 : 2e-6;
    const std::string name = std::string("batch_norm train ") + dtype_name(t);

    Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, true, float(momentum), float(eps));
    CHECK(y.shape() == x.shape());
    check_close(y, want.y, tol, tol, name + " y");
    check_close(rm, want.running_mean, tol, tol, name + " running mean");
    check_close(rv, want.running_var, tol, tol, name + " running var (unbiased)");
    // The running variance really is the unbiased one: (biased) would differ by m/(m-1) = 36/35.
    const double m = n * h * w;
    for (int ch = 0; ch < c; ++ch) {
      const double biased_update = 0.99 * rv0[ch] + 0.01 * want.var[ch];
      CHECK(std::abs(rv.to_vector()[ch] - biased_update) > 0.01 * want.var[ch] / (m - 1) * 0.5);
    }

    // The kernel table's entry also returns the saved mean and 1/sqrt(var + eps).
    Tensor rm2 = Tensor::from(rm0, {c}, t), rv2 = Tensor::from(rv0, {c}, t);
    Tensor y2 = Tensor::empty(x.shape(), t), sm = Tensor::empty({c}, t), si = Tensor::empty({c}, t);
    kernels(Device::CPU)
        .batch_norm_forward_train(x, gamma, beta, BatchNormParams{0.99f, 1e-3f}, rm2, rv2, y2, sm,
                                  si);
    check_close(sm, want.mean, tol, tol, name + " saved mean");
    check_close(si, want.invstd, tol, tol, name + " saved invstd");
    check_close(y2, want.y, tol, tol, name + " kernel y");
  }
}

TEST_CASE("forward: batch_norm eval uses the running statistics and leaves them alone") {
  std::mt19937_64 rng(19);
  const int n = 2, c = 3, h = 3, w = 5;
  for (DType t : {DType::F32, DType::F64}) {
    Tensor x = Tensor::randn({n, c, h, w}, rng, 2.0, t);
    Tensor gamma = Tensor::uniform({c}, rng, 0.5, 1.5, t);
    Tensor beta = Tensor::uniform({c}, rng, -1, 1, t);
    Tensor rm = Tensor::uniform({c}, rng, -1, 1, t);
    Tensor rv = Tensor::uniform({c}, rng, 0.5, 2, t);
    const auto rm0 = rm.to_vector(), rv0 = rv.to_vector();
    const float eps = 0.05f;
    const auto want = ref::batch_norm_eval(n, c, h * w, x.to_vector(), gamma.to_vector(),
                                           beta.to_vector(), rm0, rv0, eps);
    Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, false, 0.9f, eps);
    const double tol = t == DType::F64 ? 1e-10 : 2e-6;
    check_close(y, want, tol, tol, std::string("batch_norm eval ") + dtype_name(t));
    CHECK(rm.to_vector() == rm0);
    CHECK(rv.to_vector() == rv0);
  }
}

TEST_CASE("forward: cross_entropy value, and stability for large logits") {
  std::mt19937_64 rng(23);
  const int n = 4, m = 10;
  for (DType t : {DType::F32, DType::F64}) {
    Tensor z = Tensor::randn({n, m}, rng, 3.0, t);
    Tensor labels = test::random_labels(n, m, rng);
    std::vector<int> lv;
    for (double v : labels.to_vector()) lv.push_back(int(v));
    const double want = ref::cross_entropy(n, m, z.to_vector(), lv);
    Tensor loss = ops::cross_entropy(z, labels);
    CHECK(loss.numel() == 1);
    CHECK(loss.dtype() == (t == DType::F64 ? DType::F64 : DType::F32));
    const double tol = t == DType::F64 ? 1e-12 : 1e-6;
    CHECK(loss.item() == doctest::Approx(want).epsilon(tol));

    // Logits around +1000 and -1000: exp() would overflow / underflow without the max shift.
    for (double offset : {1000.0, -1000.0}) {
      std::vector<double> zv = z.to_vector();
      for (double& v : zv) v += offset;
      Tensor big = Tensor::from(zv, {n, m}, t);
      zv = big.to_vector();  // as stored (f32 rounding)
      const double l = ops::cross_entropy(big, labels).item();
      CHECK(std::isfinite(l));
      // f32 logits near 1000 carry 6e-5 absolute rounding; the loss is a difference of them.
      CHECK(l == doctest::Approx(ref::cross_entropy(n, m, zv, lv)).epsilon(t == DType::F64 ? 1e-9 : 1e-4));
    }
    // A confident wrong answer: loss ~ 2000, finite.
    Tensor wrong = Tensor::from({1000, -1000, 0, 5}, {2, 2}, t);
    Tensor lab = Tensor::from({1, 0}, {2}, DType::I32);
    const double lw = ops::cross_entropy(wrong, lab).item();
    CHECK(lw == doctest::Approx((2000.0 + 5.0 + std::log1p(std::exp(-5.0))) / 2).epsilon(1e-6));
  }
}

TEST_CASE("forward: count_correct") {
  Tensor z = Tensor::from({0.1, 0.9, 0.0, /**/ 2, 1, 0, /**/ -1, -2, -0.5, /**/ 0, 0, 1}, {4, 3});
  Tensor labels = Tensor::from({1, 0, 0, 1}, {4}, DType::I32);
  CHECK(ops::count_correct(z, labels) == 2);
  CHECK(ops::count_correct(z.to(DType::F64), labels) == 2);
  // The kernel-table entry adds to its output, so a loop can count without reading back.
  Tensor acc = Tensor::full({1}, 3, DType::I32);
  kernels(Device::CPU).count_correct(z, labels, acc);
  kernels(Device::CPU).count_correct(z, labels, acc);
  CHECK(acc.item() == 3 + 2 + 2);
}

TEST_CASE("forward: add, mul, scale, sum, reshape, cast") {
  std::mt19937_64 rng(29);
  for (DType t : {DType::F32, DType::F64}) {
    Tensor a = Tensor::uniform({3, 7}, rng, -2, 2, t), b = Tensor::uniform({3, 7}, rng, -2, 2, t);
    const auto av = a.to_vector(), bv = b.to_vector();
    std::vector<double> prod(av.size()), scaled(av.size()), plus(av.size());
    double total = 0, abs_total = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      // The exact product of two floats fits a double; rounding it to float is IEEE's float *.
      prod[i] = t == DType::F32 ? double(float(av[i] * bv[i])) : av[i] * bv[i];
      plus[i] = t == DType::F32 ? double(float(av[i] + bv[i])) : av[i] + bv[i];  // exact, rounded
      scaled[i] = t == DType::F32 ? double(float(av[i]) * float(-1.5)) : av[i] * -1.5;
      total += av[i];
      abs_total += std::abs(av[i]);
    }
    Tensor p = ops::add(a, b);
    CHECK(p.dtype() == t);
    CHECK(p.to_vector() == plus);
    CHECK(p.storage() != a.storage());  // a new tensor: the inputs are untouched
    CHECK(a.to_vector() == av);
    Tensor m = ops::mul(a, b);
    CHECK(m.dtype() == t);
    CHECK(m.to_vector() == prod);
    CHECK(ops::scale(a, -1.5).to_vector() == scaled);
    Tensor s = ops::sum(a);
    CHECK(s.numel() == 1);
    // f32 output: one rounding of the (double) sum.
    CHECK(std::abs(s.item() - total) <= (t == DType::F64 ? 1e-14 : 1e-7) * abs_total);
    Tensor r = ops::reshape(a, {7, 3});
    CHECK(r.shape() == Shape{7, 3});
    CHECK(r.to_vector() == av);
    CHECK(r.storage() == a.storage());  // a view, no copy
  }
  // f16: sum returns f32 and accumulates wider than f16 (2049 ones: f16 would stop at 2048).
  Tensor ones = Tensor::full({2049}, 1.0, DType::F16);
  Tensor s16 = ops::sum(ones);
  CHECK(s16.dtype() == DType::F32);
  CHECK(s16.item() == 2049.0);
  // cast: f32 -> f16 rounds each element to nearest even, f16 -> f32/f64 is exact.
  Tensor x = Tensor::from({1.0 + std::ldexp(1.0, -11), 0.1, 70000.0, -3.0}, {4});
  Tensor h = ops::cast(x, DType::F16);
  CHECK(h.dtype() == DType::F16);
  for (int i = 0; i < 4; ++i) CHECK(h.data<uint16_t>()[i] == float_to_half(x.data<float>()[i]));
  Tensor back = ops::cast(h, DType::F64);
  for (int i = 0; i < 4; ++i) CHECK(back.data<double>()[i] == double(half_to_float(h.data<uint16_t>()[i])));
  // f16 mul is computed in f32 and rounded once.
  Tensor ha = Tensor::from({1.5, 3.0, 0.1}, {3}, DType::F16), hb = Tensor::from({1.25, 1.0 / 3, 3.0}, {3}, DType::F16);
  Tensor hm = ops::mul(ha, hb);
  CHECK(hm.dtype() == DType::F16);
  for (int i = 0; i < 3; ++i) {
    const float p = half_to_float(ha.data<uint16_t>()[i]) * half_to_float(hb.data<uint16_t>()[i]);
    CHECK(hm.data<uint16_t>()[i] == float_to_half(p));
  }
}

TEST_CASE("raw kernels: elementwise loops and the finite check") {
  std::vector<double> x = {1, -2, 3, 0.5}, y = {10, 20, 30, 40};
  cpu::axpy(x.data(), 2.0, y.data(), 4);
  CHECK(y == std::vector<double>{12, 16, 36, 41});
  cpu::scale(y.data(), 0.5, 4);
  CHECK(y == std::vector<double>{6, 8, 18, 20.5});
  std::vector<float> f(100000);
  cpu::fill(f.data(), int64_t(f.size()), 0.25f);  // large enough for the threaded path
  CHECK(cpu::sum(f.data(), int64_t(f.size())) == 25000.0);
  std::vector<float> g(f.size(), 1.0f);
  CHECK(cpu::all_finite(g.data(), int64_t(g.size())));
  g[77777] = NAN;
  CHECK_FALSE(cpu::all_finite(g.data(), int64_t(g.size())));
  g[77777] = -INFINITY;
  CHECK_FALSE(cpu::all_finite(g.data(), int64_t(g.size())));
  std::vector<double> dy = {1, 2, 3, 4}, ry = {0.5, 0, -1, 2}, dx(4);
  cpu::relu_backward(ry.data(), dy.data(), dx.data(), 4);
  CHECK(dx == std::vector<double>{1, 0, 0, 4});

  // check_finite through the table sets the flag and never clears it.
  const KernelTable& k = kernels(Device::CPU);
  Tensor flag = Tensor::zeros({1});
  k.check_finite(Tensor::full({5}, 1.0), flag);
  CHECK(flag.item() == 0.0);
  Tensor bad = Tensor::from({1.0, 2.0, INFINITY}, {3}, DType::F16);
  k.check_finite(bad, flag);
  CHECK(flag.item() == 1.0);
  k.check_finite(Tensor::full({5}, 1.0), flag);
  CHECK(flag.item() == 1.0);
}

}  // namespace
}  // namespace dsc
