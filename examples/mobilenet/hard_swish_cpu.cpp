// hard_swish's CPU kernels (see hard_swish.h): plain loops in f32 arithmetic (f64 for f64),
// f16 through dsc's host conversions. The reference the CUDA kernel is tested against.
#include <algorithm>
#include <cstdint>

#include "core/half.h"
#include "hard_swish_kernels.h"

namespace mobilenet {
namespace {

template <class A> A forward_value(A x) {
  return x * std::min(std::max(x + A(3), A(0)), A(6)) / A(6);
}
template <class A> A backward_value(A x, A g) {
  return x < A(-3) ? A(0) : x > A(3) ? g : g * (A(2) * x + A(3)) / A(6);
}

// Load / store of one element type as its arithmetic type.
struct F32 {
  using T = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct F64 {
  using T = double;
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};
struct F16 {
  using T = uint16_t;
  static float load(uint16_t v) { return dsc::half_to_float(v); }
  static uint16_t store(float v) { return dsc::float_to_half(v); }
};

template <class E> void forward(const void* x, void* y, int64_t n) {
  const auto* xp = static_cast<const typename E::T*>(x);
  auto* yp = static_cast<typename E::T*>(y);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) yp[i] = E::store(forward_value(E::load(xp[i])));
}

template <class E> void backward(const void* x, const void* dy, void* dx, int64_t n) {
  const auto* xp = static_cast<const typename E::T*>(x);
  const auto* g = static_cast<const typename E::T*>(dy);
  auto* d = static_cast<typename E::T*>(dx);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] = E::store(backward_value(E::load(xp[i]), E::load(g[i])));
}

}  // namespace

void hard_swish_forward_cpu(Elem t, const void* x, void* y, int64_t n) {
  if (t == Elem::F32) forward<F32>(x, y, n);
  if (t == Elem::F64) forward<F64>(x, y, n);
  if (t == Elem::F16) forward<F16>(x, y, n);
}

void hard_swish_backward_cpu(Elem t, const void* x, const void* dy, void* dx, int64_t n) {
  if (t == Elem::F32) backward<F32>(x, dy, dx, n);
  if (t == Elem::F64) backward<F64>(x, dy, dx, n);
  if (t == Elem::F16) backward<F16>(x, dy, dx, n);
}

}  // namespace mobilenet
