// Elementwise CPU kernels (see elementwise.h): plain loops the compiler vectorises, split over
// threads with OpenMP when large. Tested against direct loops in tests/core/test_ops_forward.cpp.
#include <cmath>

#include "core/cpu/elementwise.h"
#include "core/half.h"

namespace dsc::cpu {
namespace {
constexpr int64_t kParallelMin = 1 << 16;  // below this, threads cost more than they save
}

template <class T>
void fill(T* x, int64_t n, T value) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

template <class T>
void axpy(const T* x, T alpha, T* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
void scale(T* x, T alpha, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

template <class T>
void mul(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

template <class T>
double sum(const T* x, int64_t n) {
  double acc = 0;
#pragma omp parallel for simd reduction(+ : acc) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  return acc;
}

template <class T>
bool all_finite(const T* x, int64_t n) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
  return bad == 0;
}

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

#define DSC_INSTANTIATE(T)                               \
  template void fill<T>(T*, int64_t, T);                 \
  template void axpy<T>(const T*, T, T*, int64_t);       \
  template void scale<T>(T*, T, int64_t);                \
  template void mul<T>(const T*, const T*, T*, int64_t); \
  template double sum<T>(const T*, int64_t);             \
  template bool all_finite<T>(const T*, int64_t);        \
  template void relu_forward<T>(const T*, T*, int64_t);  \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu
