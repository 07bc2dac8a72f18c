// The fused depthwise-separable convolution on the GPU (see core/cpu/depsep_conv2d.h):
//   y = act(Wp * depthwise(x, Wd) + b),
// x [N, C, H, W], wd [C, 1, R, S], wp [K, C, 1, 1], b [K] (may be null), y [N, K, P, Q], NCHW, any
// R x S, stride and zero padding (DepSepShape). f16 is __half storage with f32 arithmetic.
//
// Forward, one kernel: the depthwise output never goes to device memory. A block of 256 threads
// owns one image n, a tile of kTileP = 64 consecutive pixels of the flattened P*Q output plane and
// kTileK = 64 output channels (grid: pixel tiles, channel tiles, images). It walks the input
// channels in chunks of kChunkC = 32: the threads compute the depthwise outputs D[32][64] of the
// chunk straight from x (read-only cache; each thread one pixel, 8 channels) into shared memory,
// stage Wp[64][32] next to them, synchronise, and accumulate Wp x D. The epilogue adds the bias,
// applies the ReLU and writes y. Channels, output channels and pixels past C, K and P*Q are zeros
// in the shared tiles (so any C, K and P*Q work) and are never written.
//   f32 / f64: register tiling with FMAs (no TF32, so f32 keeps FP32 accuracy), 4 x 4 outputs per
//              thread (channels ty + 16 i, pixels tx + 16 j, so shared reads are conflict-free and
//              stores coalesced); 16.1 KiB of shared memory in f32, 32.3 KiB in f64.
//   f16:       tensor cores through nvcuda::wmma (16x16x16, half inputs, f32 accumulators): D is
//              rounded to half in shared memory (as the composed path stores it), each of the 8
//              warps owns two 16 x 16 output fragments; the accumulators go through a shared f32
//              tile for the epilogue; 26.5 KiB of shared memory.
// Shapes the grid cannot cover (N or the channel tiles above 65535) take the composed path.
//
// Backward in f16 (the mixed-precision path), K <= 128: one fused kernel for the pointwise half
// (depsep_conv2d_backward_wmma_kernel, below: D recomputed and g = dy * (y > 0) both stay on chip;
// dD = Wp^T g is written once; dWp and db are summed from per-block partials), then our depthwise
// backward kernels on dD. Other dtypes, K > 128 and depsep=composed: composed of existing
// kernels, recomputing the depthwise output D instead of keeping it from the forward: D =
// depthwise(x); g = dy * (y > 0) (dy without ReLU); db = sums of g; dWp = g D^T; dD = Wp^T g;
// dx = depthwise^T(dD); dWd = correlation of x with dD. The depthwise steps go through
// conv2d_backward (so the depthwise option applies, in both; our kernels do dx and dWd in one
// pass over dD for stride 1), the pointwise ones through conv2d_* with a 1x1 shape (so the
// pointwise option applies: cuBLAS GEMMs or cuDNN; cuBLAS in f64).
//
// The kernel option depsep=composed (core/kernel_options.h; default fused) makes the forward the
// same composition (depthwise, 1x1 convolution with bias, ReLU) and the f16 backward the composed
// one, so that the two can be compared on one GPU.
// Tested against the CPU's fused kernels (core/cpu/depsep_conv2d_cpu.cpp) in
// tests/cuda/test_cuda_depsep_conv2d.cpp and, through ops::depsep_conv2d, in
// tests/cuda/test_cuda_conv2d.cpp.
#include <mma.h>

#include <algorithm>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"
#include "core/kernel_options.h"

namespace dsc::cuda {
namespace {

// ---- fused forward ------------------------------------------------------------------------------

constexpr int kTileP = 64;   // output pixels per block (consecutive in the P*Q plane)
constexpr int kTileK = 64;   // output channels per block
constexpr int kChunkC = 32;  // input channels per step
constexpr int kFusedThreads = 256;
constexpr int kLdWs = kTileK + 1;   // FMA path: Wp tile stored transposed [kChunkC][kTileK + 1]
constexpr int kLdWh = kChunkC + 8;  // wmma path: Wp tile [kTileK][kChunkC] as half, padded rows
constexpr int kLdDh = kTileP + 8;   // wmma path: D tile [kChunkC][kTileP] as half
constexpr int kLdO = kTileP + 4;    // wmma path: output tile [kTileK][kTileP] as float
static_assert(kFusedThreads % kTileP == 0 && kFusedThreads == 16 * 16 && kTileP == 4 * 16 &&
                  kTileK == 4 * 16,
              "the FMA path's 16 x 16 threads own 4 x 4 outputs each");
static_assert(kTileK == 4 * 16 && kTileP == 4 * 16 && kFusedThreads / 32 == 8 && kChunkC % 16 == 0,
              "the wmma path's 8 warps own two 16 x 16 fragments each of the 64 x 64 tile");

struct Geom {
  int c, h, w, r, s, stride, pad, q, k;
  int64_t pq;  // P * Q
  bool relu;
};

Geom geom_of(const DepSepShape& s) {
  const ConvShape& d = s.dw;
  return Geom{d.c, d.h, d.w, d.r, d.s, d.stride, d.pad, s.q(), s.k, int64_t(s.p()) * s.q(), s.relu};
}

constexpr size_t fma_smem(size_t acc_bytes) {
  return acc_bytes * (size_t(kChunkC) * kTileP + size_t(kChunkC) * kLdWs);
}
constexpr size_t kWmmaSmem = sizeof(__half) * (size_t(kTileK) * kLdWh + size_t(kChunkC) * kLdDh) +
                             sizeof(float) * size_t(kTileK) * kLdO;
static_assert(fma_smem(sizeof(double)) <= 48 * 1024 && kWmmaSmem <= 48 * 1024,
              "the fused kernels stay within 48 KiB of shared memory");
static_assert((sizeof(__half) * kTileK * kLdWh) % 32 == 0 &&
                  (sizeof(__half) * kChunkC * kLdDh) % 32 == 0 && kLdWh % 8 == 0 &&
                  kLdDh % 8 == 0 && kLdO % 4 == 0,
              "wmma tiles start 32-byte aligned with ldm a multiple of 16 bytes");

// The depthwise outputs of input channels c0 .. c0 + kChunkC - 1 at this thread's pixel (fixed:
// threadIdx.x % kTileP), handed to put(channel in chunk, pixel in tile, value); zero past C and
// past the plane (pix_ok false). h0, w0: the top-left input position of the pixel's window.
template <class T, class Put>
__device__ __forceinline__ void depthwise_chunk(const T* __restrict__ xn, const T* __restrict__ wd,
                                                const Geom& g, int c0, bool pix_ok, int h0, int w0,
                                                Put put) {
  using A = acc_t<T>;
  const int j = threadIdx.x % kTileP;
  for (int cl = threadIdx.x / kTileP; cl < kChunkC; cl += kFusedThreads / kTileP) {
    const int c = c0 + cl;
    A acc = 0;
    if (pix_ok && c < g.c) {
      const T* xp = xn + int64_t(c) * g.h * g.w;
      const T* f = wd + int64_t(c) * g.r * g.s;
      for (int r = 0; r < g.r; ++r) {
        const int hh = h0 + r;
        if (hh < 0 || hh >= g.h) continue;
        for (int t = 0; t < g.s; ++t) {
          const int ww = w0 + t;
          if (ww >= 0 && ww < g.w)
            acc += to_acc(__ldg(f + r * g.s + t)) * to_acc(__ldg(xp + int64_t(hh) * g.w + ww));
        }
      }
    }
    put(cl, j, acc);
  }
}

// Where this thread's depthwise pixel (threadIdx.x % kTileP of the block's tile) reads x.
struct PixelWindow {
  bool ok;
  int h0, w0;
};

__device__ __forceinline__ PixelWindow window_of(const Geom& g, int64_t pix) {
  if (pix >= g.pq) return PixelWindow{false, 0, 0};
  const int p = static_cast<int>(pix / g.q), q = static_cast<int>(pix % g.q);
  return PixelWindow{true, p * g.stride - g.pad, q * g.stride - g.pad};
}

template <class A>
__device__ __forceinline__ A epilogue(A v, const Geom& g) {
  return g.relu ? (v > A(0) ? v : A(0)) : v;
}

// f32 / f64: FMA register tiling. Shared memory: D [kChunkC][kTileP], Wp^T [kChunkC][kLdWs].
template <class T>
__global__ void __launch_bounds__(kFusedThreads)
    depsep_conv2d_forward_fma_kernel(const T* __restrict__ x, const T* __restrict__ wd,
                                     const T* __restrict__ wp, const T* __restrict__ b,
                                     T* __restrict__ y, Geom g) {
  using A = acc_t<T>;
  DSC_DYNAMIC_SMEM(smem_raw, 128);
  A* ds = reinterpret_cast<A*>(smem_raw);
  A* ws = ds + kChunkC * kTileP;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int n = blockIdx.z, k0 = blockIdx.y * kTileK;
  const int64_t pix0 = int64_t(blockIdx.x) * kTileP;
  const PixelWindow win = window_of(g, pix0 + tid % kTileP);
  const T* xn = x + int64_t(n) * g.c * g.h * g.w;
  A acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = A(0);
  for (int c0 = 0; c0 < g.c; c0 += kChunkC) {
    __syncthreads();  // every thread is done reading the previous chunk
    depthwise_chunk(xn, wd, g, c0, win.ok, win.h0, win.w0,
                    [&](int cl, int j, A v) { ds[cl * kTileP + j] = v; });
    for (int i = tid; i < kChunkC * kTileK; i += kFusedThreads) {
      const int cl = i % kChunkC, kl = i / kChunkC;  // consecutive threads: consecutive c of wp
      const int c = c0 + cl, k = k0 + kl;
      ws[cl * kLdWs + kl] = (c < g.c && k < g.k) ? to_acc(__ldg(wp + int64_t(k) * g.c + c)) : A(0);
    }
    __syncthreads();
#pragma unroll 4
    for (int cl = 0; cl < kChunkC; ++cl) {
      A a[4], v[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ws[cl * kLdWs + ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = ds[cl * kTileP + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * v[j];
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int k = k0 + ty + 16 * i;
    if (k >= g.k) continue;
    const A bias = b ? to_acc(b[k]) : A(0);
    T* yk = y + (int64_t(n) * g.k + k) * g.pq;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t pix = pix0 + tx + 16 * j;
      if (pix < g.pq) yk[pix] = cast_to<T>(epilogue(acc[i][j] + bias, g));
    }
  }
}

// f16: tensor cores. Shared memory: Wp [kTileK][kLdWh] half, D [kChunkC][kLdDh] half, then the
// output tile [kTileK][kLdO] float for the epilogue. Warp w owns output channels 16 (w / 2) .. +15
// and pixel fragments 2 (w % 2) and 2 (w % 2) + 1.
__global__ void __launch_bounds__(kFusedThreads)
    depsep_conv2d_forward_wmma_kernel(const __half* __restrict__ x, const __half* __restrict__ wd,
                                      const __half* __restrict__ wp, const __half* __restrict__ b,
                                      __half* __restrict__ y, Geom g) {
  namespace wmma = nvcuda::wmma;
  DSC_DYNAMIC_SMEM(smem_raw, 128);
  __half* ws = reinterpret_cast<__half*>(smem_raw);
  __half* ds = ws + kTileK * kLdWh;
  float* out = reinterpret_cast<float*>(ds + kChunkC * kLdDh);
  const int tid = threadIdx.x, warp = tid / 32;
  const int wk = warp / 2, wf = (warp % 2) * 2;
  const int n = blockIdx.z, k0 = blockIdx.y * kTileK;
  const int64_t pix0 = int64_t(blockIdx.x) * kTileP;
  const PixelWindow win = window_of(g, pix0 + tid % kTileP);
  const __half* xn = x + int64_t(n) * g.c * g.h * g.w;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
  for (int c0 = 0; c0 < g.c; c0 += kChunkC) {
    __syncthreads();  // every warp is done reading the previous chunk
    depthwise_chunk(xn, wd, g, c0, win.ok, win.h0, win.w0,
                    [&](int cl, int j, float v) { ds[cl * kLdDh + j] = __float2half_rn(v); });
    for (int i = tid; i < kChunkC * kTileK; i += kFusedThreads) {
      const int cl = i % kChunkC, kl = i / kChunkC;
      const int c = c0 + cl, k = k0 + kl;
      ws[kl * kLdWh + cl] =
          (c < g.c && k < g.k) ? __ldg(wp + int64_t(k) * g.c + c) : __float2half_rn(0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kChunkC; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
      wmma::load_matrix_sync(a, ws + wk * 16 * kLdWh + kk, kLdWh);
#pragma unroll
      for (int f = 0; f < 2; ++f) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> bf;
        wmma::load_matrix_sync(bf, ds + kk * kLdDh + (wf + f) * 16, kLdDh);
        wmma::mma_sync(acc[f], a, bf, acc[f]);
      }
    }
  }
  for (int f = 0; f < 2; ++f)
    wmma::store_matrix_sync(out + wk * 16 * kLdO + (wf + f) * 16, acc[f], kLdO,
                            wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < kTileK * kTileP; i += kFusedThreads) {
    const int kl = i / kTileP, j = i % kTileP;  // consecutive threads: consecutive pixels
    const int k = k0 + kl;
    const int64_t pix = pix0 + j;
    if (k >= g.k || pix >= g.pq) continue;
    const float bias = b ? __half2float(b[k]) : 0.0f;
    y[(int64_t(n) * g.k + k) * g.pq + pix] =
        __float2half_rn(epilogue(out[kl * kLdO + j] + bias, g));
  }
}

// ---- fused backward, f16 (tensor cores) ---------------------------------------------------------
//
// One kernel does the pointwise half of the backward for up to kBwdK = 128 output channels: per
// tile of kTileP pixels of one image it recomputes the depthwise output D (never stored), masks dy
// by the ReLU into g (never stored), and computes
//   dD  = Wp^T g            written to device memory (half), the depthwise steps' input;
//   dWp += g D^T, db += sums of g   accumulated over all the block's tiles in registers.
// A block owns a group of up to kBwdCG = 128 input channels (grid.x) and walks the tiles
// blockIdx.y, blockIdx.y + gridDim.y, ... (about two blocks per SM in all), so dy and y are read
// once per channel group and the weight gradient leaves each block once, as an f32 partial that
// column_sum (common.cuh) adds up. Per tile: g [kpad][64] is loaded once; for each of the group's
// (at most two) 64-channel halves, D [64][64] and Wp [kpad][64] are loaded, the warps multiply
// (dWp: warp w owns rows 16 w .. 16 w + 15 and the half's four 16-channel fragments; dD: warp w
// owns channels 16 (w / 2) and two pixel fragments), and dD goes through a shared f32 tile (over
// the Wp tile) to coalesced stores. kpad = K rounded up to 16; rows and pixels past K and P*Q are
// zeros, so they add nothing. Shared memory: 45 KiB. Compared with the composed backward it saves
// the passes over D (write + 2 reads), g (write + 2 reads) and one over dy / y per GEMM.
constexpr int kBwdK = 128;        // output channels the fused backward handles (more: composed)
constexpr int kBwdCG = 128;       // input channels per block (two halves of kBwdCH)
constexpr int kBwdCH = 64;        // input channels per half
constexpr int kLdB = kTileP + 8;  // half tiles g [kBwdK][kLdB], Wp [kBwdK][kLdB], D [kBwdCH][kLdB]
constexpr int kLdS = kTileP + 4;  // f32 staging tile of dD [kBwdCH][kLdS] (over the Wp tile)
constexpr size_t kBwdSmem = sizeof(__half) * size_t(kLdB) * (2 * kBwdK + kBwdCH);
static_assert(kBwdSmem <= 48 * 1024 &&
                  sizeof(float) * kBwdCH * kLdS <= sizeof(__half) * kBwdK * kLdB,
              "the fused backward's tiles fit in 48 KiB; the dD staging tile fits over Wp");
static_assert(kBwdK == 16 * (kFusedThreads / 32) && kBwdCH == 2 * kChunkC && kBwdCH == kTileP &&
                  kBwdCG == 2 * kBwdCH && kLdB % 8 == 0 && kLdS % 4 == 0,
              "8 warps: 16 rows of dWp each; dD fragments: 4 channel x 4 pixel, two per warp");

__global__ void __launch_bounds__(kFusedThreads, 2)
    depsep_conv2d_backward_wmma_kernel(const __half* __restrict__ x, const __half* __restrict__ wd,
                                       const __half* __restrict__ wp, const __half* __restrict__ y,
                                       const __half* __restrict__ dy, __half* __restrict__ dd,
                                       float* __restrict__ part, int n_img, Geom g) {
  namespace wmma = nvcuda::wmma;
  DSC_DYNAMIC_SMEM(smem_raw, 128);
  __half* gs = reinterpret_cast<__half*>(smem_raw);  // g [kBwdK][kLdB]
  __half* ws = gs + kBwdK * kLdB;                    // Wp half [kBwdK][kLdB], then dD staging
  __half* ds = ws + kBwdK * kLdB;                    // D half [kBwdCH][kLdB]
  float* stage = reinterpret_cast<float*>(ws);
  const int tid = threadIdx.x, warp = tid / 32;
  const int cg0 = blockIdx.x * kBwdCG;
  const int halves = min(2, (g.c - cg0 + kBwdCH - 1) / kBwdCH);
  const int kpad = (g.k + 15) / 16 * 16;
  const bool dwp_rows = 16 * warp < kpad;  // warp-uniform
  const int cw = warp / 2, pf0 = (warp % 2) * 2;
  const int64_t pixel_tiles = (g.pq + kTileP - 1) / kTileP;
  const int64_t tiles = pixel_tiles * n_img;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_w[2][4];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int f = 0; f < 4; ++f) wmma::fill_fragment(acc_w[h][f], 0.0f);
  float acc_b = 0.0f;  // db: thread tid < K owns row tid (channel group 0 only)
  for (int64_t tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
    const int n = static_cast<int>(tile / pixel_tiles);
    const int64_t pix0 = (tile % pixel_tiles) * kTileP;
    // g = dy masked by the ReLU (rows past K and pixels past the plane: zeros). The previous
    // tile's last readers of gs passed a barrier after their multiplications.
    for (int i = tid; i < kpad * kTileP; i += kFusedThreads) {
      const int k = i / kTileP, j = i % kTileP;
      const int64_t pix = pix0 + j;
      __half v = __float2half_rn(0.0f);
      if (k < g.k && pix < g.pq) {
        const int64_t at = (int64_t(n) * g.k + k) * g.pq + pix;
        v = dy[at];
        if (g.relu && !(__half2float(y[at]) > 0.0f)) v = __float2half_rn(0.0f);
      }
      gs[k * kLdB + j] = v;
    }
    const PixelWindow win = window_of(g, pix0 + tid % kTileP);
    const __half* xn = x + int64_t(n) * g.c * g.h * g.w;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (h >= halves) break;
      const int c0 = cg0 + h * kBwdCH;
      __syncthreads();  // the previous half's staging tile and D are read
      for (int part = 0; part < 2; ++part)
        depthwise_chunk(xn, wd, g, c0 + part * kChunkC, win.ok, win.h0, win.w0,
                        [&](int cl, int j, float v) {
                          ds[(part * kChunkC + cl) * kLdB + j] = __float2half_rn(v);
                        });
      for (int i = tid; i < kpad * kBwdCH; i += kFusedThreads) {
        const int k = i / kBwdCH, cl = i % kBwdCH, c = c0 + cl;  // consecutive c of wp
        ws[k * kLdB + cl] =
            (k < g.k && c < g.c) ? __ldg(wp + int64_t(k) * g.c + c) : __float2half_rn(0.0f);
      }
      __syncthreads();
      if (h == 0 && blockIdx.x == 0 && tid < g.k) {
        float s = 0.0f;
        for (int j = 0; j < kTileP; ++j) s += __half2float(gs[tid * kLdB + j]);
        acc_b += s;
      }
      // dWp[16 warp .. +15][half's channels] += g[rows][pixels] D^T[pixels][channels]
      if (dwp_rows) {
#pragma unroll
        for (int pp = 0; pp < kTileP; pp += 16) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
          wmma::load_matrix_sync(a, gs + 16 * warp * kLdB + pp, kLdB);
#pragma unroll
          for (int f = 0; f < 4; ++f) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
            wmma::load_matrix_sync(b, ds + 16 * f * kLdB + pp, kLdB);
            wmma::mma_sync(acc_w[h][f], a, b, acc_w[h][f]);
          }
        }
      }
      // dD[16 cw .. +15][pixel fragments pf0, pf0 + 1] = Wp^T[channels][rows] g[rows][pixels]
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_d[2];
      wmma::fill_fragment(acc_d[0], 0.0f);
      wmma::fill_fragment(acc_d[1], 0.0f);
      for (int kk = 0; kk < kpad; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::col_major> a;
        wmma::load_matrix_sync(a, ws + kk * kLdB + 16 * cw, kLdB);
#pragma unroll
        for (int f = 0; f < 2; ++f) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> b;
          wmma::load_matrix_sync(b, gs + kk * kLdB + 16 * (pf0 + f), kLdB);
          wmma::mma_sync(acc_d[f], a, b, acc_d[f]);
        }
      }
      __syncthreads();  // every warp is done reading Wp: its tile becomes the staging tile
#pragma unroll
      for (int f = 0; f < 2; ++f)
        wmma::store_matrix_sync(stage + 16 * cw * kLdS + 16 * (pf0 + f), acc_d[f], kLdS,
                                wmma::mem_row_major);
      __syncthreads();
      for (int i = tid; i < kBwdCH * kTileP; i += kFusedThreads) {
        const int cl = i / kTileP, j = i % kTileP;  // consecutive threads: consecutive pixels
        const int c = c0 + cl;
        const int64_t pix = pix0 + j;
        if (c < g.c && pix < g.pq)
          dd[(int64_t(n) * g.c + c) * g.pq + pix] = __float2half_rn(stage[cl * kLdS + j]);
      }
    }
    __syncthreads();  // every thread is done with gs and the staging tile
  }
  // This block's partial sums in row blockIdx.y of part (bwd_partial_row floats: [gridDim.x]
  // [kBwdK][kBwdCG] for dWp, then [kBwdK] for db).
  float* row = part + int64_t(blockIdx.y) * (int64_t(gridDim.x) * kBwdK * kBwdCG + kBwdK);
  float* pw = row + int64_t(blockIdx.x) * kBwdK * kBwdCG;
  if (dwp_rows) {
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int f = 0; f < 4; ++f)
        wmma::store_matrix_sync(pw + 16 * warp * kBwdCG + h * kBwdCH + 16 * f, acc_w[h][f], kBwdCG,
                                wmma::mem_row_major);
  }
  if (blockIdx.x == 0 && tid < kBwdK) row[int64_t(gridDim.x) * kBwdK * kBwdCG + tid] = acc_b;
}

// With column_sum over the rows of partial sums: column (cg * kBwdK + k) * kBwdCG + cl is dWp[k]
// [cg * kBwdCG + cl], column cgroups * kBwdK * kBwdCG + k is db[k] (db may be null); columns past K
// and C are padding.
struct DepSepGradOut {
  __half* dwp;
  __half* db;
  int k_out, c_in, cgroups;
  __device__ void operator()(int64_t col, float sum) const {
    const int64_t wp_cols = int64_t(cgroups) * kBwdK * kBwdCG;
    if (col < wp_cols) {
      const int cl = static_cast<int>(col % kBwdCG), k = static_cast<int>(col / kBwdCG % kBwdK);
      const int c = static_cast<int>(col / (int64_t(kBwdK) * kBwdCG)) * kBwdCG + cl;
      if (k < k_out && c < c_in) dwp[int64_t(k) * c_in + c] = __float2half_rn(sum);
    } else {
      const int k = static_cast<int>(col - wp_cols);
      if (db && k < k_out) db[k] = __float2half_rn(sum);
    }
  }
};

// ---- host side ----------------------------------------------------------------------------------

void check_depsep(const char* op, const DepSepShape& s, const Tensor& x, const Tensor& wd,
                  const Tensor& wp, const Tensor* b, const Tensor& y) {
  const ConvShape& d = s.dw;
  DSC_CHECK(d.n >= 0 && d.c > 0 && d.h > 0 && d.w > 0 && d.r > 0 && d.s > 0 && s.k > 0 &&
                d.stride > 0 && d.pad >= 0,
            op, ": invalid shape (n=", d.n, " c=", d.c, " h=", d.h, " w=", d.w, " r=", d.r,
            " s=", d.s, " k=", s.k, " stride ", d.stride, " pad ", d.pad, ")");
  DSC_CHECK(d.groups == d.c && d.k == d.c, op, ": the depthwise part needs groups = k = c");
  DSC_CHECK(s.p() > 0 && s.q() > 0, op, ": a ", d.r, "x", d.s, " filter with padding ", d.pad,
            " does not fit a ", d.h, "x", d.w, " input");
  DSC_CHECK(x.numel() == d.x_numel() && wd.numel() == d.w_numel() &&
                wp.numel() == int64_t(s.k) * d.c && y.numel() == s.y_numel() &&
                (!b || b->numel() == s.k),
            op, ": tensors ", x.str(), ", ", wd.str(), ", ", wp.str(), ", ", y.str(),
            " do not match the shape");
  for (const Tensor* t : {&x, &wd, &wp, b, &y})
    if (t) {
      DSC_CHECK(t->device() == Device::CUDA, op, ": tensor ", t->str(), " is not on cuda");
      DSC_CHECK(t->dtype() == x.dtype(), op, ": dtypes differ: ", x.str(), " and ", t->str());
    }
}

// The pointwise part as a 1x1 convolution of the depthwise output [N, C, P, Q].
ConvShape pointwise_shape(const DepSepShape& s) {
  ConvShape pw;
  pw.n = s.dw.n;
  pw.c = s.dw.c;
  pw.h = s.p();
  pw.w = s.q();
  pw.k = s.k;
  pw.r = pw.s = 1;
  pw.stride = 1;
  pw.pad = 0;
  pw.groups = 1;
  return pw;
}

Tensor depthwise_output(const DepSepShape& s, DType t) {
  return Tensor::empty({s.dw.n, s.dw.c, s.p(), s.q()}, t, Device::CUDA);
}

void composed_forward(const DepSepShape& s, const Tensor& x, const Tensor& wd, const Tensor& wp,
                      const Tensor* b, Tensor& y) {
  Tensor t = depthwise_output(s, x.dtype());
  conv2d_forward(s.dw, x, wd, nullptr, t);
  conv2d_forward(pointwise_shape(s), t, wp, b, y);
  if (s.relu) relu_forward(y, y);
}

bool fused_fits(const DepSepShape& s) {
  const int64_t pixel_tiles = (int64_t(s.p()) * s.q() + kTileP - 1) / kTileP;
  const int64_t k_tiles = (int64_t(s.k) + kTileK - 1) / kTileK;
  return pixel_tiles < (int64_t(1) << 31) && k_tiles <= 65535 && s.dw.n <= 65535;
}

}  // namespace

void depsep_conv2d_forward(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                           const Tensor& wp, const Tensor* b, Tensor& y, Tensor* relu_mask) {
  DSC_CHECK(!relu_mask, "depsep forward: the CUDA backend reads y for the ReLU mask, not bits");
  check_depsep("depsep forward", s, x, wd, wp, b, y);
  if (y.numel() == 0) return;  // empty batch
  if (kernel_options().depsep == KernelOptions::DepSep::Composed || !fused_fits(s)) {
    composed_forward(s, x, wd, wp, b, y);
    return;
  }
  const Geom g = geom_of(s);
  const dim3 grid(static_cast<unsigned>((g.pq + kTileP - 1) / kTileP),
                  static_cast<unsigned>((s.k + kTileK - 1) / kTileK),
                  static_cast<unsigned>(s.dw.n));
  dispatch_float(x.dtype(), "depsep forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, __half>) {
      launch(depsep_conv2d_forward_wmma_kernel, grid, kFusedThreads, kWmmaSmem)(
          dptr<T>(x), dptr<T>(wd), dptr<T>(wp), dptr_opt<T>(b), dptr<T>(y), g);
    } else {
      launch(depsep_conv2d_forward_fma_kernel<T>, grid, kFusedThreads, fma_smem(sizeof(acc_t<T>)))(
          dptr<T>(x), dptr<T>(wd), dptr<T>(wp), dptr_opt<T>(b), dptr<T>(y), g);
    }
  });
}

void depsep_conv2d_backward(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                            const Tensor& wp, const Tensor& y, const Tensor* relu_mask,
                            const Tensor& dy, Tensor* dx, Tensor& dwd, Tensor& dwp, Tensor* db) {
  DSC_CHECK(!relu_mask, "depsep backward: the CUDA backend reads y for the ReLU mask, not bits");
  check_depsep("depsep backward", s, x, wd, wp, db, s.relu ? y : dy);  // y: only the ReLU mask
  check_depsep("depsep backward", s, dx ? *dx : x, dwd, dwp, nullptr, dy);
  DSC_CHECK(dy.dtype() == x.dtype(), "depsep backward: dtypes differ: ", x.str(), " and ",
            dy.str());
  const bool fused = kernel_options().depsep == KernelOptions::DepSep::Fused;
  const DType dt = x.dtype();
  if (s.y_numel() == 0) {  // empty batch: the gradients are zero
    fill(dwd, 0.0);
    fill(dwp, 0.0);
    if (db) fill(*db, 0.0);
    return;
  }
  if (fused && dt == DType::F16 && s.k <= kBwdK) {
    // dD from the fused kernel, the weight gradients summed from its partials, then the
    // depthwise steps on dD.
    const Geom g = geom_of(s);
    const int cgroups = (s.dw.c + kBwdCG - 1) / kBwdCG;
    const int64_t tiles = (g.pq + kTileP - 1) / kTileP * s.dw.n;
    const int groups = static_cast<int>(
        std::clamp<int64_t>(2 * sm_count() / cgroups, 1, std::min<int64_t>(tiles, 65535)));
    Tensor dd = depthwise_output(s, dt);
    const int64_t row = int64_t(cgroups) * kBwdK * kBwdCG + kBwdK;  // one block row of partials
    Tensor part = Tensor::empty({groups * row}, DType::F32, Device::CUDA);
    launch(depsep_conv2d_backward_wmma_kernel, dim3(cgroups, groups), kFusedThreads, kBwdSmem)(
        dptr<__half>(x), dptr<__half>(wd), dptr<__half>(wp), s.relu ? dptr<__half>(y) : nullptr,
        dptr<__half>(dy), dptr<__half>(dd), dptr<float>(part), s.dw.n, g);
    column_sum(
        dptr<float>(part), groups, row,
        DepSepGradOut{dptr<__half>(dwp), db ? dptr<__half>(*db) : nullptr, s.k, s.dw.c, cgroups},
        "depsep backward column_sum_kernel");
    conv2d_backward(s.dw, x, dd, wd, dx, dwd, nullptr);
    return;
  }
  const ConvShape pw = pointwise_shape(s);
  // t = depthwise(x), recomputed.
  Tensor t = depthwise_output(s, dt);
  conv2d_forward(s.dw, x, wd, nullptr, t);
  // g = dy masked by the ReLU.
  Tensor g = dy;
  if (s.relu) {
    g = Tensor::empty(dy.shape(), dt, Device::CUDA);
    relu_backward(y, dy, g);
  }
  // dWp = g t^T and db = sums of g; then t <- Wp^T g (t is not read again, so its storage is
  // reused: every call is ordered on the compute stream).
  conv2d_backward_filter(pw, t, g, dwp, db);
  conv2d_backward_data(pw, g, wp, t);
  // dx = depthwise^T(t), dWd = correlation of x with t (in one pass where it applies, as for
  // separate layers).
  conv2d_backward(s.dw, x, t, wd, dx, dwd, nullptr);
}

}  // namespace dsc::cuda
