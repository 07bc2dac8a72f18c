// Host emulator of the CUDA backend, for checking kernels on a machine without a GPU (see README.md;
// never built by CMake, never part of dsc). Force-included into each core/cuda/*.cu after
// transform.py has rewritten its launches: the CUDA qualifiers become nothing (__shared__ becomes
// `static`, safe because blocks run one at a time), threadIdx / blockIdx / blockDim / gridDim become
// thread-locals set by the launcher, and __syncthreads / warp shuffles / atomicAdd are emulated.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include <math.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __shared__
#define __shared__ static

namespace emu {
extern thread_local uint3 t_threadIdx, t_blockIdx;
extern thread_local dim3 t_blockDim, t_gridDim;
void syncthreads();
uint64_t exchange(uint64_t bits, int src_lane);  // warp shuffle (src out of range: own value)
int lane();
unsigned char* dynamic_smem();
void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
int atomic_add(int* p, int v);

template <class K> struct Launcher {
  const char* name;
  K k;
  dim3 g, b;
  size_t smem;
  template <class... A> void operator()(A... args) const {
    run_grid(name, g, b, smem, [&] { k(args...); });
  }
};
template <class K>
Launcher<K> launch(const char* name, K k, dim3 g, dim3 b, size_t smem = 0, cudaStream_t = nullptr) {
  return Launcher<K>{name, k, g, b, smem};
}
}  // namespace emu

#define threadIdx emu::t_threadIdx
#define blockIdx emu::t_blockIdx
#define blockDim emu::t_blockDim
#define gridDim emu::t_gridDim

inline void __syncthreads() { emu::syncthreads(); }
template <class T> T __shfl_down_sync(unsigned, T v, int off) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(bits, emu::lane() + off);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
template <class T> T __shfl_xor_sync(unsigned, T v, int m) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(bits, emu::lane() ^ m);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
inline int atomicAdd(int* p, int v) { return emu::atomic_add(p, v); }
using std::max;
using std::min;
