// hard_swish's CUDA kernels (see hard_swish.h): one thread per element (grid-stride), f16 storage
// with f32 arithmetic, on dsc's compute stream. Built only when the installed dsc has CUDA;
// checked against the CPU kernels in test_mobilenet.cpp (hard_swish_cuda, on a GPU).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_interop.h"
#include "hard_swish_kernels.h"

namespace mobilenet {
namespace {

__device__ float to_acc(float v) { return v; }
__device__ double to_acc(double v) { return v; }
__device__ float to_acc(__half v) { return __half2float(v); }
template <class T, class A> __device__ T from_acc(A v) { return static_cast<T>(v); }
template <> __device__ __half from_acc<__half, float>(float v) { return __float2half_rn(v); }

template <class T> __global__ void forward_kernel(const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const auto v = to_acc(x[i]);
    using A = decltype(v);
    y[i] = from_acc<T>(v * min(max(v + A(3), A(0)), A(6)) / A(6));
  }
}

template <class T> __global__ void backward_kernel(const T* x, const T* dy, T* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const auto v = to_acc(x[i]);
    using A = decltype(v);
    const A g = to_acc(dy[i]);
    dx[i] = from_acc<T>(v < A(-3) ? A(0) : v > A(3) ? g : g * (A(2) * v + A(3)) / A(6));
  }
}

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return unsigned(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

}  // namespace

void hard_swish_forward_cuda(Elem t, const void* x, void* y, int64_t n, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (t == Elem::F32)
    forward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const float*>(x),
                                                 static_cast<float*>(y), n);
  if (t == Elem::F64)
    forward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const double*>(x),
                                                 static_cast<double*>(y), n);
  if (t == Elem::F16)
    forward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const __half*>(x),
                                                 static_cast<__half*>(y), n);
  dsc::cuda_check_launch("hard_swish forward_kernel");
}

void hard_swish_backward_cuda(Elem t, const void* x, const void* dy, void* dx, int64_t n,
                              void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (t == Elem::F32)
    backward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const float*>(x),
                                                  static_cast<const float*>(dy),
                                                  static_cast<float*>(dx), n);
  if (t == Elem::F64)
    backward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const double*>(x),
                                                  static_cast<const double*>(dy),
                                                  static_cast<double*>(dx), n);
  if (t == Elem::F16)
    backward_kernel<<<blocks_for(n), 256, 0, s>>>(static_cast<const __half*>(x),
                                                  static_cast<const __half*>(dy),
                                                  static_cast<__half*>(dx), n);
  dsc::cuda_check_launch("hard_swish backward_kernel");
}

}  // namespace mobilenet
