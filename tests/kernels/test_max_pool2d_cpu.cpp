// Tests of the CPU max pooling kernels (core/cpu/max_pool2d.h) against the rule written here as
// plainly as possible: y = the window's maximum, taken with `v > best` from its first element in
// row-major order (so a NaN first element gives NaN and later NaNs are skipped); dx = dy at the
// window's first element equal to y, zero elsewhere. The inputs are built to stress the rule:
// many exact ties (ReLU zeros and repeated values), negative zeros, NaNs, an input height that
// leaves rows outside every window, and widths that the 4x4 / stride-4 AVX2 path takes (W % 8 ==
// 0) and does not. Outputs are poisoned with NaN first.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu/max_pool2d.h"

namespace {

template <class T>
struct Pooled {
  std::vector<T> y, dx;
};

template <class T>
Pooled<T> naive(const std::vector<T>& x, const std::vector<T>& dy, int planes, int h, int w, int k,
                int st) {
  const int p = (h - k) / st + 1, q = (w - k) / st + 1;
  Pooled<T> r;
  r.y.assign(size_t(planes) * p * q, T(0));
  r.dx.assign(x.size(), T(0));
  for (int pl = 0; pl < planes; ++pl)
    for (int i = 0; i < p; ++i)
      for (int j = 0; j < q; ++j) {
        auto at = [&](int a, int b) { return (size_t(pl) * h + i * st + a) * w + j * st + b; };
        T best = x[at(0, 0)];
        for (int a = 0; a < k; ++a)
          for (int b = 0; b < k; ++b)
            if (x[at(a, b)] > best) best = x[at(a, b)];
        const size_t o = (size_t(pl) * p + i) * q + j;
        r.y[o] = best;
        bool done = false;
        for (int a = 0; a < k && !done; ++a)
          for (int b = 0; b < k && !done; ++b)
            if (x[at(a, b)] == best) {
              r.dx[at(a, b)] += dy[o];
              done = true;
            }
      }
  return r;
}

// Values with many exact ties: zeros of both signs (as after a ReLU), a few repeated levels,
// random values, and (optionally) a NaN in about one window in 40.
template <class T>
std::vector<T> tricky(size_t n, std::mt19937& gen, bool nans) {
  std::uniform_int_distribution<int> kind(0, 99);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<T> v(n);
  for (auto& e : v) {
    const int c = kind(gen);
    if (c < 35) e = T(0);
    else if (c < 40) e = T(-0.0);
    else if (c < 55) e = T(0.5 * (c % 3));  // 0, 0.5, 1: exact repeats
    else if (nans && c == 99 && kind(gen) < 15) e = std::numeric_limits<T>::quiet_NaN();
    else e = T(u(gen));
  }
  return v;
}

// Exact equality with NaN == NaN; the sign of a zero is not compared.
template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b, size_t& first_bad) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) {
      first_bad = i;
      return false;
    }
  return true;
}

template <class T>
void check_pool(int n, int c, int h, int w, int k, int st, bool nans, unsigned seed) {
  INFO("n=" << n << " c=" << c << " h=" << h << " w=" << w << " k=" << k << " st=" << st
            << " nans=" << nans << (sizeof(T) == 4 ? " float" : " double"));
  std::mt19937 gen(seed);
  const int planes = n * c, p = (h - k) / st + 1, q = (w - k) / st + 1;
  const std::vector<T> x = tricky<T>(size_t(planes) * h * w, gen, nans);
  std::vector<T> dy = tricky<T>(size_t(planes) * p * q, gen, false);
  for (auto& e : dy) e = e == T(0) ? T(0.25) : e;  // a zero dy would hide a misplaced gradient
  const Pooled<T> ref = naive(x, dy, planes, h, w, k, st);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> y(ref.y.size(), nan), dx(x.size(), nan);
  dsc::cpu::max_pool2d_forward<T>(x.data(), n, c, h, w, k, st, y.data());
  size_t bad = 0;
  CHECK_MESSAGE(same(y, ref.y, bad), "forward differs at ", bad);
  dsc::cpu::max_pool2d_backward<T>(x.data(), ref.y.data(), dy.data(), n, c, h, w, k, st, dx.data());
  CHECK_MESSAGE(same(dx, ref.dx, bad), "backward differs at ", bad, ": ", dx[bad], " vs ",
                ref.dx[bad]);
  // Every window routes its gradient to exactly one element unless its maximum is NaN.
  int64_t nonzero = 0, nan_windows = 0;
  for (T v : dx) nonzero += v != T(0);
  for (T v : ref.y) nan_windows += std::isnan(v);
  if (k == st) CHECK(nonzero == int64_t(ref.y.size()) - nan_windows);
}

}  // namespace

TEST_CASE("max_pool2d 4x4 stride 4: ties, signed zeros and NaNs, widths on and off the AVX2 path") {
  for (bool nans : {false, true}) {
    check_pool<float>(2, 3, 32, 32, 4, 4, nans, 1);  // the seed models' pool
    check_pool<float>(1, 2, 9, 40, 4, 4, nans, 2);   // a row below the last window
    check_pool<float>(3, 1, 8, 8, 4, 4, nans, 3);    // one vector per row
    check_pool<float>(2, 2, 12, 12, 4, 4, nans, 4);  // W % 8 != 0: scalar loop
    check_pool<double>(2, 3, 32, 32, 4, 4, nans, 5);
  }
}

TEST_CASE("max_pool2d other windows and strides follow the same rule") {
  for (bool nans : {false, true}) {
    check_pool<float>(2, 3, 8, 8, 2, 2, nans, 6);
    check_pool<float>(2, 2, 9, 11, 3, 2, nans, 7);
    check_pool<double>(1, 3, 7, 9, 3, 1, nans, 8);
  }
}
