// Elementwise CPU kernels on contiguous raw buffers of n elements (T = float or double).
// Tested against direct loops in tests/core/test_ops_forward.cpp.
#pragma once

#include <cstdint>

namespace dsc::cpu {

template <class T>
void fill(T* x, int64_t n, T value);
template <class T>
void axpy(const T* x, T alpha, T* y, int64_t n);  // y += alpha * x
template <class T>
void scale(T* x, T alpha, int64_t n);
template <class T>
void mul(const T* a, const T* b, T* out, int64_t n);
template <class T>
double sum(const T* x, int64_t n);  // accumulated in double
template <class T>
bool all_finite(const T* x, int64_t n);
template <class T>
void relu_forward(const T* x, T* y, int64_t n);
template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n);  // dy*(y>0)
void f16_to_f32(const uint16_t* src, float* dst, int64_t n);
void f32_to_f16(const float* src, uint16_t* dst, int64_t n);

}  // namespace dsc::cpu
