// Host emulator of the CUDA backend, for checking kernels on a machine without a GPU (see README.md;
// never built by CMake, never part of dsc). Force-included into each core/cuda/*.cu after
// transform.py has rewritten its launches: the CUDA qualifiers become nothing (__shared__ becomes
// `static`, safe because blocks run one at a time), threadIdx / blockIdx / blockDim / gridDim become
// thread-locals set by the launcher, and __syncthreads / warp shuffles / atomicAdd are emulated, as
// is the subset of nvcuda::wmma that depsep.cu uses (each emulated thread holds a whole fragment).
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
#include <type_traits>

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

namespace emu {
extern thread_local uint3 t_threadIdx, t_blockIdx;
extern thread_local dim3 t_blockDim, t_gridDim;
void syncthreads();
uint64_t exchange(uint64_t bits, int src_lane);  // warp shuffle (src out of range: own value)
int lane();
unsigned char* dynamic_smem();
void run_grid(const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
int atomic_add(int* p, int v);
// Stream capture (cudaStreamBeginCapture .. EndCapture): while recording, launches and library
// calls are stored (arguments by value) instead of run, and run in order by cudaGraphLaunch.
bool recording();
void record(std::function<void()> op);
// Throws unless p is 32-byte aligned and ldm * elem_bytes a multiple of 16 (what wmma requires).
void wmma_check(const void* p, unsigned ldm, size_t elem_bytes, const char* what);

template <class K> struct Launcher {
  const char* name;
  K k;
  dim3 g, b;
  size_t smem;
  template <class... A> void operator()(A... args) const {
    if (recording()) {
      record([name = name, k = k, g = g, b = b, smem = smem, args...] {
        run_grid(name, g, b, smem, [&] { k(args...); });
      });
      return;
    }
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
template <class T> T __ldg(const T* p) { return *p; }
using std::max;
using std::min;

// ---- nvcuda::wmma (the subset depsep.cu uses) ------------------------------------------------------
// Each emulated thread holds the WHOLE fragment (row-major in x[]) and every collective computes the
// whole tile, so all 32 lanes of a warp end with the same fragment and write the same values on a
// store. Valid for kernels that never index fragment elements per thread (the real per-lane
// mapping is unspecified). Checked: pointer alignment (32 bytes) and ldm (a multiple of 16 bytes).
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K> struct FragShape;
template <int M, int N, int K> struct FragShape<matrix_a, M, N, K> { static constexpr int rows = M, cols = K; };
template <int M, int N, int K> struct FragShape<matrix_b, M, N, K> { static constexpr int rows = K, cols = N; };
template <int M, int N, int K> struct FragShape<accumulator, M, N, K> { static constexpr int rows = M, cols = N; };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
  static constexpr int rows = FragShape<Use, M, N, K>::rows, cols = FragShape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;  // emulator: the whole tile in every thread
  T x[rows * cols];
};

template <class Use, int M, int N, int K, class T, class L, class V>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = T(v);
}

template <class Use, int M, int N, int K, class T, class L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm) {
  static_assert(std::is_same_v<L, row_major> || std::is_same_v<L, col_major>,
                "matrix_a / matrix_b fragments carry their layout");
  emu::wmma_check(p, ldm, sizeof(T), "load_matrix_sync");
  using F = fragment<Use, M, N, K, T, L>;
  for (int i = 0; i < F::rows; ++i)
    for (int j = 0; j < F::cols; ++j)
      f.x[i * F::cols + j] = std::is_same_v<L, row_major> ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm];
}

template <int M, int N, int K, class T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t l) {
  emu::wmma_check(p, ldm, sizeof(T), "load_matrix_sync");
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      f.x[i * N + j] = l == mem_row_major ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm];
}

template <int M, int N, int K, class T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t l) {
  emu::wmma_check(p, ldm, sizeof(T), "store_matrix_sync");
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      (l == mem_row_major ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm]) = f.x[i * N + j];
}

// d = a b + c with f32 products and sums in k order (tensor cores' internal order and rounding
// differ; tests compare with f16 tolerances). d may be c.
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  TC out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = float(c.x[i * N + j]);
      for (int k = 0; k < K; ++k) acc += float(a.x[i * K + k]) * float(b.x[k * N + j]);
      out[i * N + j] = TC(acc);
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}
}  // namespace nvcuda::wmma
