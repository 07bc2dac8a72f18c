// Global average pooling, CPU (see global_avg_pool2d.h): one (n, c) plane per loop iteration,
// planes split over threads; then the kernel-table entries, which widen f16 to f32 around the
// loops. Tested in tests/core/test_global_avg_pool2d.cpp (naive loop, f64 finite differences).
#include <cstdint>

#include "core/cpu/global_avg_pool2d.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

template <class T>
void global_avg_pool2d_forward(const T* x, int64_t planes, int64_t plane_size, T* y) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* xp = x + plane * plane_size;
    T s = 0;
    for (int64_t i = 0; i < plane_size; ++i) s += xp[i];
    y[plane] = s / T(plane_size);
  }
}

template <class T>
void global_avg_pool2d_backward(const T* dy, int64_t planes, int64_t plane_size, T* dx) {
#pragma omp parallel for
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T g = dy[plane] / T(plane_size);
    T* dxp = dx + plane * plane_size;
    for (int64_t i = 0; i < plane_size; ++i) dxp[i] = g;
  }
}

template void global_avg_pool2d_forward<float>(const float*, int64_t, int64_t, float*);
template void global_avg_pool2d_forward<double>(const double*, int64_t, int64_t, double*);
template void global_avg_pool2d_backward<float>(const float*, int64_t, int64_t, float*);
template void global_avg_pool2d_backward<double>(const double*, int64_t, int64_t, double*);

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {
namespace {

// x [N, C, H, W] and y [N, C] of matching N and C (ops::global_avg_pool2d checks user input; this
// guards direct table calls).
void check_shapes(const char* op, const Tensor& x, const Tensor& y) {
  DSC_CHECK(x.ndim() == 4 && y.ndim() == 2 && y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1), op,
            ": expected x [N, C, H, W] and y [N, C], got ", x.str(), " and ", y.str());
}

}  // namespace

void global_avg_pool2d_forward(const Tensor& x, Tensor& y) {
  check_shapes("global_avg_pool2d", x, y);
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::global_avg_pool2d_forward(ptr<T>(xw), y.numel(), x.dim(2) * x.dim(3), ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void global_avg_pool2d_backward(const Tensor& dy, Tensor& dx) {
  check_shapes("global_avg_pool2d backward", dx, dy);
  Tensor dyw = widen(dy), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::global_avg_pool2d_backward(ptr<T>(dyw), dy.numel(), dx.dim(2) * dx.dim(3), ptr<T>(o));
  });
  narrow_into(o, dx);
}

}  // namespace dsc::cpu
