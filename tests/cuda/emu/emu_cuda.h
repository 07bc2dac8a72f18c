// Host emulator of the CUDA backend, for checking kernels on a machine without a GPU (see
// README.md). In a build configured with -DDSC_CUDA_EMU=ON, CMake compiles each core/cuda/*.cu as
// host C++ with this header force-included: the CUDA qualifiers become nothing (__shared__ becomes
// `static`, safe because blocks run one at a time), threadIdx / blockIdx / blockDim / gridDim
// become thread-locals set by the launcher, and __syncthreads / warp shuffles / atomicAdd are
// emulated, as is the subset of nvcuda::wmma that depsep_conv2d.cu uses (each emulated thread holds
// a whole fragment). The backend's own launch() and DSC_DYNAMIC_SMEM (core/cuda/common.cuh) call
// emu::launch and emu::dynamic_smem in that build; no source is rewritten.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
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
// Runs body once per CUDA thread of the grid; `where` (file:line of the launch) names it in errors.
void run_grid(const std::string& where, dim3 grid, dim3 block, size_t smem,
              const std::function<void()>& body);
int atomic_add(int* p, int v);
// Stream capture (cudaStreamBeginCapture .. EndCapture): while recording, launches and library
// calls are stored (arguments by value) instead of run, and run in order by cudaGraphLaunch.
bool recording();
void record(std::function<void()> op);
// Throws unless p is 32-byte aligned and ldm * elem_bytes a multiple of 16 (what wmma requires).
void wmma_check(const void* p, unsigned ldm, size_t elem_bytes, const char* what);

template <class K>
struct Launcher {
  std::string where;
  K k;
  dim3 g, b;
  size_t smem;
  template <class... A>
  void operator()(A... args) const {
    if (recording()) {
      record([where = where, k = k, g = g, b = b, smem = smem, args...] {
        run_grid(where, g, b, smem, [&] { k(args...); });
      });
      return;
    }
    run_grid(where, g, b, smem, [&] { k(args...); });
  }
};
template <class K>
Launcher<K> launch(const char* file, int line, K k, dim3 g, dim3 b, size_t smem) {
  return Launcher<K>{std::string(file) + ":" + std::to_string(line), k, g, b, smem};
}
}  // namespace emu

#define threadIdx emu::t_threadIdx
#define blockIdx emu::t_blockIdx
#define blockDim emu::t_blockDim
#define gridDim emu::t_gridDim

inline void __syncthreads() { emu::syncthreads(); }
template <class T>
T __shfl_down_sync(unsigned, T v, int off) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(bits, emu::lane() + off);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int m) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(bits, emu::lane() ^ m);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
inline int atomicAdd(int* p, int v) { return emu::atomic_add(p, v); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
using std::max;
using std::min;

// ---- nvcuda::wmma (the subset depsep_conv2d.cu uses)
// ------------------------------------------------------ Each emulated thread holds the WHOLE
// fragment (row-major in x[]) and every collective computes the whole tile, so all 32 lanes of a
// warp end with the same fragment and write the same values on a store. Valid for kernels that
// never index fragment elements per thread (the real per-lane mapping is unspecified). Checked:
// pointer alignment (32 bytes) and ldm (a multiple of 16 bytes).
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K>
struct FragShape;
template <int M, int N, int K>
struct FragShape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct FragShape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct FragShape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
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
      f.x[i * F::cols + j] =
          std::is_same_v<L, row_major> ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm];
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
// differ; tests compare with f16 tolerances). d may be c. The operands are widened to f32 once per
// call (not once per product): every lane of a warp repeats this call, so it is the emulator's
// hottest loop, compiled optimised and without sanitizer checks (its operands are local arrays;
// the fragments' loads and stores, where the kernels' addressing is, stay checked).
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
__attribute__((optimize("O3"), no_sanitize("address", "undefined"))) void mma_sync(
    fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
    const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  float fa[M * K], fb[K * N], out[M * N];
  for (int i = 0; i < M * K; ++i) fa[i] = float(a.x[i]);
  for (int i = 0; i < K * N; ++i) fb[i] = float(b.x[i]);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = float(c.x[i * N + j]);
      for (int k = 0; k < K; ++k) acc += fa[i * K + k] * fb[k * N + j];
      out[i * N + j] = acc;
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = TC(out[i]);
}
}  // namespace nvcuda::wmma
