// Tests of the CPU convolution kernels (core/cpu/conv2d.h) against naive loops written here
// straight from the definition, in double: forward, backward-data and backward-filter (+ bias
// gradient), for float and double, over shapes that reach every path (Winograd 3x3 stride 1,
// pointwise 1x1, depthwise, generic im2col + GEMM). Outputs are poisoned with NaN before each call.
//
// Error metric, per element: |out - ref| <= rtol * (|ref| + scale), where scale = max |ref| of the
// tensor. The absolute part is tied to the output magnitude because Winograd's error is: the
// transforms mix 6x6 input tiles with coefficients up to ~8 before the C-long reduction, so its
// rounding error is a few ulps of the *largest* outputs rather than of each output (measured:
// max err / max |ref| ~ 1e-6 .. 1e-5 for F(4x4, 3x3) at C = 128). float: rtol = 1e-4 (GEMM, direct
// paths) and 2e-4 (Winograd); double: rtol = 1e-10.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu/conv2d.h"
#include "core/cpu/gemm.h"
#include "core/cpu/winograd.h"
#include "core/cpu/winograd_gemm.h"
#include "kernels/kernel_check.h"

namespace {

using dsc::ConvShape;
using dsc::test::cast;
using dsc::test::check_close;

struct Reference {
  std::vector<double> y, dx, dw, db;
};

// y[n][k][p][q] = bias[k] + sum_{c in group(k), r, t} x[n][c][p*st - pad + r][q*st - pad + t] *
// w[k][c - c0][r][t], and its two adjoints.
Reference naive(const ConvShape& s, const std::vector<double>& x, const std::vector<double>& w,
                const std::vector<double>& b, const std::vector<double>& dy) {
  const int P = s.p(), Q = s.q(), cpg = s.c / s.groups, kpg = s.k / s.groups;
  Reference ref;
  ref.y.assign(s.y_numel(), 0.0);
  ref.dx.assign(s.x_numel(), 0.0);
  ref.dw.assign(s.w_numel(), 0.0);
  ref.db.assign(s.k, 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int k = 0; k < s.k; ++k) {
      const int c0 = (k / kpg) * cpg;
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q) {
          const size_t yi = ((size_t(n) * s.k + k) * P + p) * Q + q;
          double acc = b[k];
          const double g = dy[yi];
          ref.db[k] += g;
          for (int ci = 0; ci < cpg; ++ci)
            for (int r = 0; r < s.r; ++r)
              for (int t = 0; t < s.s; ++t) {
                const int h = p * s.stride - s.pad + r, ww = q * s.stride - s.pad + t;
                if (h < 0 || h >= s.h || ww < 0 || ww >= s.w) continue;
                const size_t xi = ((size_t(n) * s.c + c0 + ci) * s.h + h) * s.w + ww;
                const size_t wi = ((size_t(k) * cpg + ci) * s.r + r) * s.s + t;
                acc += x[xi] * w[wi];
                ref.dx[xi] += g * w[wi];
                ref.dw[wi] += g * x[xi];
              }
          ref.y[yi] = acc;
        }
    }
  return ref;
}

template <class T>
void run_and_check(const ConvShape& s, const std::vector<double>& x, const std::vector<double>& w,
                   const std::vector<double>& b, const std::vector<double>& dy,
                   const Reference& ref, double rtol, bool with_bias) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const auto xt = cast<T>(x), wt = cast<T>(w), bt = cast<T>(b), dyt = cast<T>(dy);
  std::vector<T> y(s.y_numel(), nan), dx(s.x_numel(), nan), dw(s.w_numel(), nan), db(s.k, nan);
  const std::string tag = std::string(sizeof(T) == 4 ? "float" : "double");
  dsc::cpu::conv2d_forward<T>(s, xt.data(), wt.data(), with_bias ? bt.data() : nullptr, y.data());
  if (with_bias) {
    check_close(y, ref.y, rtol, tag + " forward");
  } else {  // the reference includes the bias: compare y + b
    for (size_t i = 0; i < y.size(); ++i) y[i] += bt[(i / (s.p() * s.q())) % s.k];
    check_close(y, ref.y, rtol, tag + " forward (no bias)");
  }
  dsc::cpu::conv2d_backward_data<T>(s, dyt.data(), wt.data(), dx.data());
  check_close(dx, ref.dx, rtol, tag + " backward_data");
  dsc::cpu::conv2d_backward_filter<T>(s, xt.data(), dyt.data(), dw.data(),
                                      with_bias ? db.data() : nullptr);
  check_close(dw, ref.dw, rtol, tag + " backward_filter");
  if (with_bias) check_close(db, ref.db, rtol, tag + " backward_filter dbias");
}

void check_shape(const ConvShape& s, double rtol_float = 1e-4, bool with_bias = true,
                 unsigned seed = 1) {
  INFO("n=" << s.n << " c=" << s.c << " h=" << s.h << " w=" << s.w << " k=" << s.k << " r=" << s.r
            << " s=" << s.s << " stride=" << s.stride << " pad=" << s.pad << " groups=" << s.groups
            << " bias=" << with_bias);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  auto rnd = [&](int64_t n) {
    std::vector<double> v(n);
    for (auto& e : v) e = u(gen);
    return v;
  };
  const auto x = rnd(s.x_numel()), w = rnd(s.w_numel()), b = rnd(s.k), dy = rnd(s.y_numel());
  const Reference ref = naive(s, x, w, b, dy);
  run_and_check<float>(s, x, w, b, dy, ref, rtol_float, with_bias);
  run_and_check<double>(s, x, w, b, dy, ref, 1e-10, with_bias);
}

ConvShape shape(int n, int c, int h, int w, int k, int r, int s, int stride, int pad,
                int groups = 1) {
  ConvShape cs;
  cs.n = n, cs.c = c, cs.h = h, cs.w = w, cs.k = k, cs.r = r, cs.s = s;
  cs.stride = stride, cs.pad = pad, cs.groups = groups;
  return cs;
}

constexpr double kWinogradRtol = 2e-4;

}  // namespace

TEST_CASE("conv2d 3x3 stride 1 (Winograd path), odd sizes") {
  check_shape(shape(2, 3, 7, 9, 7, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(3, 5, 13, 11, 17, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(2, 13, 4, 4, 7, 3, 3, 1, 1), kWinogradRtol, false);
  check_shape(shape(2, 13, 9, 6, 17, 3, 3, 1, 0), kWinogradRtol);
  check_shape(shape(1, 17, 5, 3, 5, 3, 3, 1, 2), kWinogradRtol);
  check_shape(shape(2, 7, 1, 1, 3, 3, 3, 1, 1), kWinogradRtol);
}

// The AVX2 build takes Winograd only from 16 input and output channels (winograd.h); these shapes
// reach it there, the ones above only on AVX-512.
TEST_CASE("conv2d 3x3 stride 1 (Winograd path), odd sizes, 16+ channels") {
#ifdef DSC_CPU_MICRO_KERNEL
  CHECK(dsc::cpu::winograd::applicable(shape(2, 16, 7, 9, 17, 3, 3, 1, 1)));
  CHECK(dsc::cpu::winograd::applicable(shape(2, 3, 7, 9, 17, 3, 3, 1, 1)) ==
        (DSC_CPU_MICRO_KERNEL == 512));
#endif
  check_shape(shape(2, 16, 7, 9, 17, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(1, 17, 5, 3, 16, 3, 3, 1, 2), kWinogradRtol);
  check_shape(shape(2, 16, 9, 6, 24, 3, 3, 1, 0), kWinogradRtol, false);
  check_shape(shape(3, 19, 13, 11, 16, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(2, 16, 1, 1, 16, 3, 3, 1, 1), kWinogradRtol);
}

TEST_CASE("conv2d 3x3 stride 1 at the model's shapes (batch 2)") {
  check_shape(shape(2, 3, 32, 32, 128, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(2, 128, 32, 32, 128, 3, 3, 1, 1), kWinogradRtol);
}

TEST_CASE("conv2d generic path: stride 2, other kernel sizes, padding") {
  check_shape(shape(2, 5, 9, 8, 7, 3, 3, 2, 1));
  check_shape(shape(1, 5, 9, 8, 7, 3, 3, 2, 1));  // one image: GEMMs split over the threads
  check_shape(shape(3, 13, 11, 13, 17, 3, 3, 2, 0), 1e-4, false);
  check_shape(shape(2, 5, 11, 9, 7, 5, 5, 1, 2));
  check_shape(shape(2, 3, 13, 12, 5, 5, 5, 2, 0));
  check_shape(shape(2, 5, 9, 7, 7, 3, 1, 1, 1));
  check_shape(shape(2, 5, 9, 7, 7, 2, 2, 2, 0));
}

TEST_CASE("conv2d pointwise 1x1") {
  check_shape(shape(3, 13, 7, 9, 17, 1, 1, 1, 0));
  check_shape(shape(2, 5, 7, 9, 7, 1, 1, 2, 0), 1e-4, false);
  check_shape(shape(2, 5, 5, 6, 7, 1, 1, 1, 1));
  // H * W % 32 == 0 and C >= 16: the float micro-kernel path (K, C not multiples of 8).
  check_shape(shape(3, 17, 8, 4, 13, 1, 1, 1, 0));
  check_shape(shape(1, 17, 8, 4, 13, 1, 1, 1, 0));
  check_shape(shape(2, 24, 16, 8, 7, 1, 1, 1, 0), 1e-4, false);
  check_shape(shape(2, 128, 32, 32, 128, 1, 1, 1, 0));
}

TEST_CASE("conv2d depthwise") {
  check_shape(shape(2, 5, 7, 9, 5, 3, 3, 1, 1, 5));
  check_shape(shape(3, 13, 13, 11, 13, 3, 3, 1, 1, 13), 1e-4, false);
  check_shape(shape(2, 7, 9, 8, 7, 3, 3, 2, 1, 7));
  check_shape(shape(2, 7, 9, 8, 7, 3, 3, 1, 0, 7));
  check_shape(shape(2, 3, 11, 10, 3, 5, 5, 1, 2, 3));
  check_shape(shape(2, 3, 11, 10, 3, 5, 5, 2, 0, 3));
  check_shape(shape(2, 3, 11, 10, 3, 9, 9, 1, 4, 3));  // large filter (81 taps)
  check_shape(shape(2, 3, 11, 10, 3, 3, 5, 1, 1, 3));  // R != S
  check_shape(shape(2, 17, 33, 35, 17, 3, 3, 1, 1, 17));
  check_shape(shape(2, 128, 32, 32, 128, 3, 3, 1, 1, 128));
  // 3x3 padding 1 with W % 16 == 0 (the in-place AVX2 stencil, four rows x 16 columns a block):
  // several blocks across (left edge, interior, right edge) or one with both edges, heights that
  // leave a last group of 3, 2 or 1 rows, one row.
  check_shape(shape(2, 5, 7, 96, 5, 3, 3, 1, 1, 5));
  check_shape(shape(2, 4, 6, 48, 4, 3, 3, 1, 1, 4));
  check_shape(shape(2, 3, 5, 16, 3, 3, 3, 1, 1, 3));
  check_shape(shape(2, 3, 1, 64, 3, 3, 3, 1, 1, 3));
  check_shape(shape(1, 4, 2, 8, 4, 3, 3, 1, 1, 4));  // W % 8 == 0 only: the filter gradient
}

TEST_CASE("conv2d with one thread gives the same answers") {
  const int saved = dsc::cpu::num_threads();
  dsc::cpu::set_num_threads(1);
  check_shape(shape(2, 5, 13, 11, 17, 3, 3, 1, 1), kWinogradRtol);
  check_shape(shape(2, 13, 7, 9, 13, 3, 3, 1, 1, 13));
  check_shape(shape(2, 13, 7, 9, 17, 1, 1, 1, 0));
  dsc::cpu::set_num_threads(saved);
}

TEST_CASE("conv2d called from inside an OpenMP region (nested, concurrent callers)") {
  // Each of four concurrent callers runs all three kernels on its own outputs; the results must
  // match one call made outside any parallel region (scratch buffers are per thread).
  const ConvShape shapes[] = {shape(2, 13, 9, 10, 17, 3, 3, 1, 1),
                              shape(2, 24, 8, 4, 9, 1, 1, 1, 0), shape(2, 5, 9, 8, 7, 3, 3, 2, 1),
                              shape(2, 7, 9, 8, 7, 3, 3, 1, 1, 7)};
  for (const ConvShape& s : shapes) {
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    auto rnd = [&](int64_t n) {
      std::vector<float> v(n);
      for (auto& e : v) e = u(gen);
      return v;
    };
    const auto x = rnd(s.x_numel()), w = rnd(s.w_numel()), b = rnd(s.k), dy = rnd(s.y_numel());
    auto run = [&](std::vector<float>& out) {
      out.assign(s.y_numel() + s.x_numel() + s.w_numel() + s.k, std::nanf(""));
      float* y = out.data();
      float* dx = y + s.y_numel();
      float* dw = dx + s.x_numel();
      float* db = dw + s.w_numel();
      dsc::cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y);
      dsc::cpu::conv2d_backward_data(s, dy.data(), w.data(), dx);
      dsc::cpu::conv2d_backward_filter(s, x.data(), dy.data(), dw, db);
    };
    std::vector<float> serial;
    run(serial);
    std::vector<float> nested[4];
#pragma omp parallel for num_threads(4)
    for (int i = 0; i < 4; ++i) run(nested[i]);
    double scale = 0;
    for (float v : serial) scale = std::max(scale, double(std::abs(v)));
    for (const auto& out : nested) {
      size_t bad = 0;
      for (size_t i = 0; i < serial.size(); ++i)
        if (!(std::abs(out[i] - serial[i]) <= 1e-5 * scale)) ++bad;
      INFO("groups=" << s.groups << " r=" << s.r << " stride=" << s.stride);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("conv2d rejects shapes outside the contract") {
  std::vector<float> buf(4096, 1.f);
  const float* p = buf.data();
  float* o = buf.data();
  CHECK_THROWS(dsc::cpu::conv2d_forward(shape(1, 4, 5, 5, 8, 3, 3, 1, 1, 4), p, p, p, o));
  CHECK_THROWS(dsc::cpu::conv2d_forward(shape(1, 4, 5, 5, 4, 3, 3, 0, 1), p, p, p, o));
  CHECK_THROWS(dsc::cpu::conv2d_backward_data(shape(1, 4, 2, 2, 4, 5, 5, 1, 0), p, p, o));
  CHECK_THROWS(dsc::cpu::conv2d_backward_filter(shape(0, 4, 5, 5, 4, 3, 3, 1, 1), p, p, o, o));
}
