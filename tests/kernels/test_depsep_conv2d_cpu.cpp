// Tests of the fused depthwise-separable kernels (core/cpu/depsep_conv2d.h) against a naive
// reference written here from the definition, in double: t = depthwise(x), z = Wp t + b, y =
// relu(z) (or z), and the adjoints g = dy * (z > 0), dWp = g t^T, db = sum g, dt = Wp^T g, dx =
// depthwise^T(dt), dWd = correlation of x with dt. Shapes reach every path: the AVX-512 / AVX2
// micro-kernel (PQ % 32 == 0, C >= 16), OpenBLAS GEMMs, plain rows for C < 16, strides 1 and 2,
// padding 0 and 1, one image (serial loop) and several, with and without bias and ReLU. Outputs are
// poisoned with NaN first. Elements of dy whose pre-activation lies within 1e-3 of the ReLU kink
// are zeroed, so rounding cannot flip a mask bit between float and the reference. With ReLU, the
// forward's mask as bits is checked against y > 0 and the backward is run from it (without y).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu/depsep_conv2d.h"
#include "core/cpu/gemm.h"
#include "kernels/kernel_check.h"

namespace {

using dsc::DepSepShape;
using dsc::test::cast;
using dsc::test::check_close;

struct Reference {
  std::vector<double> y, dx, dwd, dwp, db;
};

Reference naive(const DepSepShape& s, const std::vector<double>& x, const std::vector<double>& wd,
                const std::vector<double>& wp, const std::vector<double>& b,
                std::vector<double>& dy /* kink-adjacent entries zeroed */) {
  const dsc::ConvShape& d = s.dw;
  const int C = d.c, K = s.k, P = s.p(), Q = s.q(), H = d.h, W = d.w, PQ = P * Q;
  Reference ref;
  ref.y.assign(size_t(d.n) * K * PQ, 0.0);
  ref.dx.assign(x.size(), 0.0);
  ref.dwd.assign(wd.size(), 0.0);
  ref.dwp.assign(wp.size(), 0.0);
  ref.db.assign(K, 0.0);
  // fn(ti, xi, wi) for every depthwise tap of image n landing inside the input: depthwise output
  // index (within the image), input index, filter index.
  auto for_each_tap = [&](int n, auto&& fn) {
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q)
          for (int r = 0; r < d.r; ++r)
            for (int u = 0; u < d.s; ++u) {
              const int h = p * d.stride - d.pad + r, w = q * d.stride - d.pad + u;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              fn(size_t(c) * PQ + p * Q + q, ((size_t(n) * C + c) * H + h) * W + w,
                 (size_t(c) * d.r + r) * d.s + u);
            }
  };
  for (int n = 0; n < d.n; ++n) {
    std::vector<double> t(size_t(C) * PQ, 0.0), dt(size_t(C) * PQ, 0.0);
    for_each_tap(n, [&](size_t ti, size_t xi, size_t wi) { t[ti] += x[xi] * wd[wi]; });
    for (int k = 0; k < K; ++k)
      for (int i = 0; i < PQ; ++i) {
        double z = b.empty() ? 0.0 : b[k];
        for (int c = 0; c < C; ++c) z += wp[size_t(k) * C + c] * t[size_t(c) * PQ + i];
        const size_t yi = (size_t(n) * K + k) * PQ + i;
        ref.y[yi] = s.relu ? std::max(z, 0.0) : z;
        if (s.relu && std::abs(z) < 1e-3) dy[yi] = 0.0;
        const double g = (s.relu && z <= 0) ? 0.0 : dy[yi];
        ref.db[k] += g;
        for (int c = 0; c < C; ++c) {
          ref.dwp[size_t(k) * C + c] += g * t[size_t(c) * PQ + i];
          dt[size_t(c) * PQ + i] += g * wp[size_t(k) * C + c];
        }
      }
    for_each_tap(n, [&](size_t ti, size_t xi, size_t wi) {
      ref.dx[xi] += dt[ti] * wd[wi];
      ref.dwd[wi] += dt[ti] * x[xi];
    });
  }
  return ref;
}

template <class T>
void run_and_check(const DepSepShape& s, const std::vector<double>& x,
                   const std::vector<double>& wd, const std::vector<double>& wp,
                   const std::vector<double>& b, const std::vector<double>& dy,
                   const Reference& ref, double rtol) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const auto xt = cast<T>(x), wdt = cast<T>(wd), wpt = cast<T>(wp), bt = cast<T>(b),
             dyt = cast<T>(dy);
  std::vector<T> y(ref.y.size(), nan), dx(x.size(), nan), dwd(wd.size(), nan), dwp(wp.size(), nan),
      db(s.k, nan);
  const std::string tag = sizeof(T) == 4 ? "float" : "double";
  const T* bias = b.empty() ? nullptr : bt.data();
  dsc::cpu::depsep_conv2d_forward<T>(s, xt.data(), wdt.data(), wpt.data(), bias, y.data());
  check_close(y, ref.y, rtol, tag + " forward");
  dsc::cpu::depsep_conv2d_backward<T>(s, xt.data(), wdt.data(), wpt.data(), y.data(), dyt.data(),
                                      dx.data(), dwd.data(), dwp.data(),
                                      bias ? db.data() : nullptr);
  check_close(dx, ref.dx, rtol, tag + " dx");
  check_close(dwd, ref.dwd, rtol, tag + " d depthwise weight");
  check_close(dwp, ref.dwp, rtol, tag + " d pointwise weight");
  if (bias) check_close(db, ref.db, rtol, tag + " d bias");
  // Without dx (the first layer's input needs no gradient): the weight gradients are unchanged.
  std::vector<T> dwd2(wd.size(), nan), dwp2(wp.size(), nan);
  dsc::cpu::depsep_conv2d_backward<T>(s, xt.data(), wdt.data(), wpt.data(), y.data(), dyt.data(),
                                      nullptr, dwd2.data(), dwp2.data(), nullptr);
  check_close(dwd2, ref.dwd, rtol, tag + " d depthwise weight (no dx)");
  check_close(dwp2, ref.dwp, rtol, tag + " d pointwise weight (no dx)");
  if (!s.relu) return;
  // The ReLU mask as bits: the forward writes exactly y > 0 (the unused bits of a row's last byte
  // zero) into a poisoned buffer and leaves y as it was; the backward from the bits, without y,
  // gives the gradients.
  const int64_t PQ = int64_t(s.p()) * s.q(), mrow = s.relu_mask_row_bytes();
  std::vector<uint8_t> mask(size_t(s.dw.n) * s.k * mrow, 0xA5);
  std::vector<T> y3(y.size(), nan);
  dsc::cpu::depsep_conv2d_forward<T>(s, xt.data(), wdt.data(), wpt.data(), bias, y3.data(),
                                     mask.data());
  CHECK_MESSAGE(std::memcmp(y3.data(), y.data(), y.size() * sizeof(T)) == 0,
                tag << " forward with the mask: y changed");
  int64_t wrong_bytes = 0;
  for (int64_t row = 0; row < int64_t(s.dw.n) * s.k; ++row)
    for (int64_t j = 0; j < mrow; ++j) {
      uint8_t want = 0;
      for (int64_t i = 8 * j; i < std::min(8 * j + 8, PQ); ++i)
        want |= uint8_t(y[row * PQ + i] > T(0)) << (i - 8 * j);
      wrong_bytes += mask[row * mrow + j] != want;
    }
  CHECK_MESSAGE(wrong_bytes == 0, tag << " mask bytes differing from y > 0: " << wrong_bytes);
  std::vector<T> dx3(x.size(), nan), dwd3(wd.size(), nan), dwp3(wp.size(), nan), db3(s.k, nan);
  dsc::cpu::depsep_conv2d_backward<T>(s, xt.data(), wdt.data(), wpt.data(), nullptr, dyt.data(),
                                      dx3.data(), dwd3.data(), dwp3.data(),
                                      bias ? db3.data() : nullptr, mask.data());
  check_close(dx3, ref.dx, rtol, tag + " dx (mask bits)");
  check_close(dwd3, ref.dwd, rtol, tag + " d depthwise weight (mask bits)");
  check_close(dwp3, ref.dwp, rtol, tag + " d pointwise weight (mask bits)");
  if (bias) check_close(db3, ref.db, rtol, tag + " d bias (mask bits)");
}

void check_shape(int n, int c, int h, int w, int k, int r, int stride, int pad, bool bias,
                 bool relu, unsigned seed = 1) {
  DepSepShape s;
  s.dw.n = n, s.dw.c = c, s.dw.h = h, s.dw.w = w, s.dw.k = c, s.dw.r = r, s.dw.s = r;
  s.dw.stride = stride, s.dw.pad = pad, s.dw.groups = c;
  s.k = k, s.relu = relu;
  INFO("n=" << n << " c=" << c << " h=" << h << " w=" << w << " k=" << k << " r=" << r
            << " stride=" << stride << " pad=" << pad << " bias=" << bias << " relu=" << relu);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  auto rnd = [&](size_t m) {
    std::vector<double> v(m);
    for (auto& e : v) e = u(gen);
    return v;
  };
  const auto x = rnd(size_t(n) * c * h * w), wd = rnd(size_t(c) * r * r), wp = rnd(size_t(k) * c);
  const auto b = bias ? rnd(k) : std::vector<double>();
  auto dy = rnd(size_t(n) * k * s.p() * s.q());
  const Reference ref = naive(s, x, wd, wp, b, dy);
  run_and_check<float>(s, x, wd, wp, b, dy, ref, 1e-4);
  run_and_check<double>(s, x, wd, wp, b, dy, ref, 1e-10);
}

}  // namespace

TEST_CASE("fused depsep: micro-kernel path (PQ % 32 == 0, C >= 16), K and C not multiples of 8") {
  check_shape(3, 17, 8, 4, 13, 3, 1, 1, true, true);
  check_shape(2, 24, 8, 8, 20, 3, 1, 1, false, true);
  check_shape(3, 17, 8, 4, 13, 3, 1, 1, true, false);
  check_shape(1, 17, 8, 4, 13, 3, 1, 1, true, true);  // one image: the serial loop
}

TEST_CASE("fused depsep: OpenBLAS and plain-row paths, strides, padding, filter sizes") {
  check_shape(2, 3, 7, 9, 11, 3, 1, 1, true, true);    // C < 16: plain rows (the first layer)
  check_shape(3, 19, 7, 5, 6, 3, 1, 1, true, true);    // PQ % 32 != 0: OpenBLAS
  check_shape(2, 5, 9, 8, 7, 3, 2, 1, true, true);     // stride 2
  check_shape(2, 18, 9, 9, 7, 3, 1, 0, false, true);   // padding 0
  check_shape(2, 6, 11, 10, 9, 5, 1, 2, true, false);  // 5x5
}

TEST_CASE("fused depsep at the model's shapes (batch 2)") {
  check_shape(2, 3, 32, 32, 128, 3, 1, 1, true, true);
  check_shape(2, 128, 32, 32, 128, 3, 1, 1, true, true);
}

TEST_CASE("fused depsep: planes of a multiple of 256 pixels (padded per-image buffer rows)") {
  check_shape(2, 20, 16, 16, 9, 3, 1, 1, true, false);  // t padded, dy (no ReLU) packed
  check_shape(2, 20, 16, 16, 9, 3, 1, 1, false, true);  // t and the masked g padded
  check_shape(2, 16, 8, 32, 14, 3, 1, 1, true, true);
}

TEST_CASE("fused depsep: 3x3 padding 1 over several 32-column blocks and an odd height") {
  check_shape(2, 17, 5, 64, 9, 3, 1, 1, true, true);
  check_shape(2, 4, 3, 96, 6, 3, 1, 1, false, true);
}

TEST_CASE("fused depsep with one thread gives the same answers") {
  const int saved = dsc::cpu::num_threads();
  dsc::cpu::set_num_threads(1);
  check_shape(3, 17, 8, 4, 13, 3, 1, 1, true, true);
  check_shape(2, 5, 9, 8, 7, 3, 2, 1, true, true);
  dsc::cpu::set_num_threads(saved);
}
