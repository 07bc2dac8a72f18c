// Global average pooling on NCHW buffers: x [N, C, H, W] -> y [N, C], the mean of each plane of
// H * W elements; backward dx[n, c, h, w] = dy[n, c] / (H * W) (core/cpu/global_avg_pool2d.h, the
// specification). Forward: one warp per plane, each lane summing a strided slice of the plane in
// the accumulation type (f32 for f16), then a warp sum; lane 0 writes the mean. Backward: one
// thread per input element. Tested against the CPU backend on random inputs, outputs poisoned with
// NaN first, in tests/cuda/test_cuda_global_avg_pool2d.cpp.
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

constexpr int kWarpsPerBlock = kThreads / 32;

template <class T>
__global__ void global_avg_pool2d_forward_kernel(const T* x, int64_t planes, int64_t plane_size,
                                                 T* y) {
  using A = acc_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t first = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  // Every lane of a warp takes the same planes, so the whole warp reaches the shuffle together.
  for (int64_t plane = first; plane < planes; plane += int64_t(gridDim.x) * kWarpsPerBlock) {
    const T* xp = x + plane * plane_size;
    A s = 0;
    for (int64_t i = lane; i < plane_size; i += 32) s += to_acc(xp[i]);
    s = warp_sum(s);
    if (lane == 0) y[plane] = cast_to<T>(s / A(plane_size));
  }
}

template <class T>
__global__ void global_avg_pool2d_backward_kernel(const T* dy, int64_t total, int64_t plane_size,
                                                  T* dx) {
  using A = acc_t<T>;
  DSC_GRID_STRIDE(i, total) { dx[i] = cast_to<T>(to_acc(dy[i / plane_size]) / A(plane_size)); }
}

void check_shapes(const char* op, const Tensor& x, const Tensor& y) {
  DSC_CHECK(x.ndim() == 4 && y.ndim() == 2 && y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1) &&
                x.dtype() == y.dtype(),
            op, ": expected x [N, C, H, W] and y [N, C] of one dtype, got ", x.str(), " and ",
            y.str());
}

}  // namespace

void global_avg_pool2d_forward(const Tensor& x, Tensor& y) {
  check_shapes("global_avg_pool2d", x, y);
  const int64_t planes = y.numel(), plane_size = x.dim(2) * x.dim(3);
  if (planes == 0) return;
  dispatch_float(x.dtype(), "global_avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(global_avg_pool2d_forward_kernel<T>, grid_for(planes * 32), kThreads)(
        dptr<T>(x), planes, plane_size, dptr<T>(y));
  });
}

void global_avg_pool2d_backward(const Tensor& dy, Tensor& dx) {
  check_shapes("global_avg_pool2d backward", dx, dy);
  const int64_t total = dx.numel();
  if (total == 0) return;
  dispatch_float(dx.dtype(), "global_avg_pool2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(global_avg_pool2d_backward_kernel<T>, grid_for(total), kThreads)(
        dptr<T>(dy), total, dx.dim(2) * dx.dim(3), dptr<T>(dx));
  });
}

}  // namespace dsc::cuda
