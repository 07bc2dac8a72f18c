// Elementwise CPU kernels (see elementwise.h): plain loops the compiler vectorises, split over
// threads with OpenMP when large. Tested against direct loops in tests/core/test_ops_forward.cpp.
#include <cmath>
#include <cstring>
#include <string>

#include "core/cpu/elementwise.h"
#include "core/cpu/kernels.h"
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

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {

void fill(Tensor& t, double v) {
  switch (t.dtype()) {
    case DType::F32: cpu::fill(t.data<float>(), t.numel(), float(v)); break;
    case DType::F64: cpu::fill(t.data<double>(), t.numel(), v); break;
    case DType::F16: {
      const uint16_t h = float_to_half(float(v));
      uint16_t* p = t.data<uint16_t>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = h;
      break;
    }
    default: throw Error(std::string("fill: unsupported dtype ") + dtype_name(t.dtype()));
  }
}

void broadcast(const Tensor& value, Tensor& t) {
  DSC_CHECK(value.numel() == 1 && value.dtype() == t.dtype(), "broadcast: value ", value.str(),
            " must be one element of ", t.str(), "'s dtype");
  fill(t, value.item());  // exact: every float dtype round-trips through double
}

void cast(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  const DType a = src.dtype(), b = dst.dtype();
  if (a == b) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
  } else if (a == DType::F16 && b == DType::F32) {
    cpu::f16_to_f32(src.data<uint16_t>(), dst.data<float>(), n);
  } else if (a == DType::F32 && b == DType::F16) {
    cpu::f32_to_f16(src.data<float>(), dst.data<uint16_t>(), n);
  } else if (a == DType::F32 && b == DType::F64) {
    const float* s = src.data<float>();
    double* d = dst.data<double>();
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  } else if (a == DType::F64 && b == DType::F32) {
    const double* s = src.data<double>();
    float* d = dst.data<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
  } else {
    Tensor mid = Tensor::empty(src.shape(), DType::F32);
    cast(src, mid);
    cast(mid, dst);
  }
}

void axpy(const Tensor& x, double alpha, Tensor& y) {
  DSC_CHECK(x.dtype() == y.dtype() || (x.dtype() == DType::F16 && y.dtype() == DType::F32),
            "axpy: cannot add ", x.str(), " into ", y.str(), " (same dtype, or f16 into f32)");
  if (x.dtype() != y.dtype()) {  // f16 gradients into f32 master gradients
    Tensor xs = widen(x);
    cpu::axpy(xs.data<float>(), float(alpha), ptr<float>(y), y.numel());
    return;
  }
  if (y.dtype() == DType::F16) {
    Tensor ys = widen(y), xs = widen(x);
    cpu::axpy(xs.data<float>(), float(alpha), ys.data<float>(), y.numel());
    narrow_into(ys, y);
    return;
  }
  by_dtype(y.dtype(), [&]<class T>() { cpu::axpy(ptr<T>(x), T(alpha), ptr<T>(y), y.numel()); });
}

void scale(Tensor& t, double alpha) {
  if (t.dtype() == DType::F16) {
    Tensor s = widen(t);
    cpu::scale(s.data<float>(), float(alpha), t.numel());
    narrow_into(s, t);
    return;
  }
  by_dtype(t.dtype(), [&]<class T>() { cpu::scale(ptr<T>(t), T(alpha), t.numel()); });
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor aw = widen(a), bw = widen(b), o = scratch_for(out);
  by_dtype(o.dtype(), [&]<class T>() { cpu::mul(ptr<T>(aw), ptr<T>(bw), ptr<T>(o), o.numel()); });
  narrow_into(o, out);
}

void sum(const Tensor& x, Tensor& out) {
  Tensor xw = widen(x);
  double s = 0;
  by_dtype(xw.dtype(), [&]<class T>() { s = cpu::sum(ptr<T>(xw), xw.numel()); });
  out.fill_(s);
}

void check_finite(const Tensor& x, Tensor& found_inf) {
  Tensor xw = widen(x);
  bool ok = true;
  by_dtype(xw.dtype(), [&]<class T>() { ok = cpu::all_finite(ptr<T>(xw), xw.numel()); });
  if (!ok) found_inf.fill_(1.0);
}

void relu_forward(const Tensor& x, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() { cpu::relu_forward(ptr<T>(xw), ptr<T>(yo), x.numel()); });
  narrow_into(yo, y);
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  Tensor yw = widen(y), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::relu_backward(ptr<T>(yw), ptr<T>(dyw), ptr<T>(o), o.numel());
  });
  narrow_into(o, dx);
}

}  // namespace dsc::cpu
