// Shared pieces of the CUDA kernels: dtype plumbing (f16 is __half storage with f32 arithmetic,
// f64 computes in double), typed device pointers with checks, launch geometry and warp/block sums.
// Included by the .cu files of core/cuda/ only.
#pragma once

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "core/tensor.h"

namespace dsc::cuda {

// ---- dtypes -------------------------------------------------------------------------------------

template <class T> struct Tag { using type = T; };

// Arithmetic type of a storage type: float for f32 and f16, double for f64.
template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using acc_t = typename AccOf<T>::type;

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ double to_acc(double v) { return v; }

// Storage value of an arithmetic value (f16: round to nearest even through f32, as the CPU does).
template <class T, class A> __device__ __forceinline__ T cast_to(A v) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <class T> constexpr DType dtype_tag();
template <> constexpr DType dtype_tag<float>() { return DType::F32; }
template <> constexpr DType dtype_tag<__half>() { return DType::F16; }
template <> constexpr DType dtype_tag<double>() { return DType::F64; }
template <> constexpr DType dtype_tag<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_tag<uint8_t>() { return DType::U8; }

// Typed device pointer of a CUDA tensor (checks device and dtype: a host pointer handed to a kernel
// would be an unrecoverable illegal-address fault).
template <class T> T* dptr(Tensor& t) {
  DSC_CHECK(t.device() == Device::CUDA, "cuda kernel given a ", device_name(t.device()), " tensor ",
            t.str());
  DSC_CHECK(t.dtype() == dtype_tag<T>(), "cuda kernel: tensor ", t.str(), " used as ",
            dtype_name(dtype_tag<T>()));
  return static_cast<T*>(t.raw());
}
template <class T> const T* dptr(const Tensor& t) { return dptr<T>(const_cast<Tensor&>(t)); }
template <class T> T* dptr_opt(Tensor* t) { return t ? dptr<T>(*t) : nullptr; }
template <class T> const T* dptr_opt(const Tensor* t) { return t ? dptr<T>(*t) : nullptr; }

// Calls f(Tag<T>{}) with T = float, __half or double.
template <class F> void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: f(Tag<float>{}); return;
    case DType::F16: f(Tag<__half>{}); return;
    case DType::F64: f(Tag<double>{}); return;
    default:
      throw Error(detail::cat(op, " on cuda: unsupported dtype ", dtype_name(t),
                              " (expected f32, f16 or f64)"));
  }
}

// Calls f(Tag<T>{}) with T = float or __half; f64 is refused with a clear message.
template <class F> void dispatch_f32_f16(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: f(Tag<float>{}); return;
    case DType::F16: f(Tag<__half>{}); return;
    case DType::F64:
      throw Error(detail::cat(op,
                              ": f64 is CPU-only (the CUDA backend computes in f32 and f16); "
                              "use --device cpu for f64"));
    default:
      throw Error(
          detail::cat(op, " on cuda: unsupported dtype ", dtype_name(t), " (expected f32 or f16)"));
  }
}

inline void same_numel(const char* op, const Tensor& a, const Tensor& b) {
  DSC_CHECK(a.numel() == b.numel(), op, ": sizes differ: ", a.str(), " and ", b.str());
}

// ---- launches -----------------------------------------------------------------------------------

// Every kernel is queued through launch(), on the compute stream, and checked right after:
//   launch(fill_kernel<T>, grid_for(n), kThreads)(dptr<T>(t), n, value);
//   launch(tiled_kernel<T>, grid, block, dynamic_smem_bytes)(...);
// Arguments are converted to the kernel's parameter types; a failed launch throws an error naming
// the kernel and the line of the launch (file and line are the caller's, through the builtins'
// default arguments). In the host-emulator build (DSC_CUDA_EMU, tests/cuda/emu) the same call
// runs the kernel on the host, so no kernel or launch is ever rewritten for it.
template <class... P>
struct KernelLaunch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  const char* file;
  int line;
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong argument count");
#ifdef DSC_CUDA_EMU
    emu::launch(file, line, kernel, grid, block, smem)(static_cast<P>(std::forward<A>(args))...);
#else
    // (.cuh files are formatted as C++, which would split the chevrons)
    // clang-format off
    kernel<<<grid, block, smem, compute_stream()>>>(static_cast<P>(std::forward<A>(args))...);
    // clang-format on
#endif
    check_launch(reinterpret_cast<const void*>(kernel), file, line);
  }
};
template <class... P>
KernelLaunch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem = 0,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return {kernel, grid, block, smem, file, line};
}

// The kernel's dynamic shared memory (the launch's smem bytes) as `unsigned char name[]`.
#ifdef DSC_CUDA_EMU
#define DSC_DYNAMIC_SMEM(name, align) unsigned char* name = ::emu::dynamic_smem()
#else
#define DSC_DYNAMIC_SMEM(name, align) \
  extern __shared__ __align__(align)  \
  unsigned char name[]
#endif

// ---- launch geometry ----------------------------------------------------------------------------

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (n > 0).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 1 << 20));
}

#define DSC_GRID_STRIDE(i, n)                                               \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

// ---- reductions ---------------------------------------------------------------------------------

template <class A> __device__ __forceinline__ A warp_sum(A v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in thread 0.
// `scratch` holds 32 values in shared memory; the call begins with a barrier, so it may be reused.
template <class A> __device__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? scratch[threadIdx.x] : A(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

// Column sums of a row-major [rows][cols] matrix of partial sums (per block, per image, ...), each
// handed to out(col, sum) (a functor with a __device__ operator()). A block of kThreads takes 32
// consecutive columns; warp w sums rows w, w + 8, ... (128-byte coalesced reads, several loads in
// flight per thread), then the 8 warp sums are added in fixed order: deterministic, and it keeps
// many loads in flight where one thread per column walking all rows would wait on each load.
constexpr int kColumnSlices = kThreads / 32;
template <class A, class Out>
__global__ void column_sum_kernel(const A* __restrict__ part, int64_t rows, int64_t cols, Out out) {
  DSC_DYNAMIC_SMEM(column_sum_smem, 16);
  A* red = reinterpret_cast<A*>(column_sum_smem);  // [kColumnSlices][32]
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int64_t col = int64_t(blockIdx.x) * 32 + lane;
  A acc = 0;
  if (col < cols) {
#pragma unroll 8
    for (int64_t r = slice; r < rows; r += kColumnSlices) acc += part[r * cols + col];
  }
  red[slice * 32 + lane] = acc;
  __syncthreads();
  if (slice == 0 && col < cols) {
    A s = 0;
    for (int i = 0; i < kColumnSlices; ++i) s += red[i * 32 + lane];
    out(col, s);
  }
}

// Launches column_sum_kernel on the compute stream (cols > 0); `what` names the caller in errors.
template <class A, class Out>
void column_sum(const A* part, int64_t rows, int64_t cols, Out out, const char* what) {
  const int64_t blocks = (cols + 31) / 32;
  DSC_CHECK(blocks < (int64_t(1) << 31), what, ": too many columns (", cols, ")");
  launch(column_sum_kernel<A, Out>, static_cast<unsigned>(blocks), kThreads,
         sizeof(A) * kColumnSlices * 32)(part, rows, cols, out);
}

}  // namespace dsc::cuda
