// Depthwise convolution (groups == C == K) on the CPU: direct loops, one (image, channel) plane per
// OpenMP iteration. Layouts: x [N, C, H, W], w [C, 1, R, S], y [N, C, P, Q].
//
// Stride 1 (the DepSep model's case): the plane is copied into a zero-padded thread-local buffer so
// that every output row is R * S contiguous, branch-free multiply-adds (AVX-512, else AVX2 + FMA,
// for float, with non-temporal stores; compiler-vectorised loops for double); on AVX2 the float
// 3x3 padding-1 case (the model's) instead reads the plane in place, four output rows x 16
// columns at a time, with masked loads at its left and right edges (no copy), and stores plainly
// (non-temporal stores wrote at 6.6 GB/s against 15.2 for plain ones on the AVX2 machine measured);
// backward-data is the same stencil on dy with the flipped filter and pad' = R - 1 - pad;
// backward-filter correlates dy with the padded input plane (per-thread partial sums over the
// planes, reduced at the end). Other strides use plain loops. Tested through conv2d_* against
// naive loops in tests/kernels/test_conv2d_cpu.cpp.

// GCC 12 reports its own AVX-512 intrinsic headers (the _mm512_undefined_* placeholders) as
// "may be used uninitialized"; the warning is a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/cpu/depthwise.h"
#include "core/cpu/gemm.h"
#include "core/cpu/parallel.h"

namespace dsc::cpu::depthwise {
namespace {

struct DepthwiseScratch;  // thread_buffer tag

// Copies plane src [h, w] into buf [h + 2 * pad, wp] with zeros around (wp >= w + 2 * pad).
template <class T>
void pad_plane(const T* src, int h, int w, int pad, int wp, T* buf) {
  const int hp = h + 2 * pad;
  for (int i = 0; i < hp; ++i) {
    T* row = buf + int64_t(i) * wp;
    const int si = i - pad;
    if (si < 0 || si >= h) {
      std::fill(row, row + wp, T(0));
      continue;
    }
    std::fill(row, row + pad, T(0));
    std::copy(src + int64_t(si) * w, src + int64_t(si) * w + w, row + pad);
    std::fill(row + pad + w, row + wp, T(0));
  }
}

#ifdef __AVX2__
// The float copy without a library call per row (a plane's rows are short: calls to memset and
// memcpy cost more than the copying): the row in 8-wide moves, its borders in 8-wide zero stores.
// GCC would turn the zero loops back into memset calls; the attribute keeps them inline.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
void pad_plane_f32(const float* src, int h, int w, int pad, int wp, float* buf) {
  const int hp = h + 2 * pad, full = w / 8 * 8;
  const __m256 zero = _mm256_setzero_ps();
  auto zero_span = [&](float* p, int n) {
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(p + j, zero);
    for (; j < n; ++j) p[j] = 0.f;
  };
  for (int i = 0; i < hp; ++i) {
    float* row = buf + int64_t(i) * wp;
    const int si = i - pad;
    if (si < 0 || si >= h) {
      zero_span(row, wp);
      continue;
    }
    zero_span(row, pad);
    const float* in = src + int64_t(si) * w;
    float* o = row + pad;
    int j = 0;
    for (; j < full; j += 8) _mm256_storeu_ps(o + j, _mm256_loadu_ps(in + j));
    for (; j < w; ++j) o[j] = in[j];
    zero_span(o + w, wp - pad - w);
  }
}
template <>
void pad_plane<float>(const float* src, int h, int w, int pad, int wp, float* buf) {
  pad_plane_f32(src, h, w, pad, wp, buf);
}
#endif

// out [P, Q] = bias + sum_{r,t} f[r * S + t] * padded[p + r][q + t] (stride 1).
template <class T>
void stencil(const T* __restrict padded, int wp, const T* __restrict f, int R, int S, T bias, int P,
             int Q, T* __restrict out, bool /*stream*/) {
  for (int p = 0; p < P; ++p) {
    T* __restrict o = out + int64_t(p) * Q;
#pragma omp simd
    for (int q = 0; q < Q; ++q) o[q] = bias;
    for (int r = 0; r < R; ++r) {
      const T* __restrict row = padded + int64_t(p + r) * wp;
      for (int t = 0; t < S; ++t) {
        const T ft = f[r * S + t];
#pragma omp simd
        for (int q = 0; q < Q; ++q) o[q] += ft * row[q + t];
      }
    }
  }
}

#ifdef __AVX512F__
// The float stencil with each 16-wide output chunk kept in a register. With stream, full, aligned
// chunks are written with non-temporal stores (a whole batch's outputs are larger than the caches
// and read back only by the next layer), so the store costs no read-for-ownership.
template <>
void stencil<float>(const float* __restrict padded, int wp, const float* __restrict f, int R, int S,
                    float bias, int P, int Q, float* __restrict out, bool stream) {
  const __m512 b = _mm512_set1_ps(bias);
  for (int p = 0; p < P; ++p) {
    float* o = out + int64_t(p) * Q;
    for (int q0 = 0; q0 < Q; q0 += 16) {
      __m512 acc = b;
      for (int r = 0; r < R; ++r) {
        const float* row = padded + int64_t(p + r) * wp + q0;
        for (int t = 0; t < S; ++t)
          acc = _mm512_fmadd_ps(_mm512_set1_ps(f[r * S + t]), _mm512_loadu_ps(row + t), acc);
      }
      if (stream && q0 + 16 <= Q && (reinterpret_cast<uintptr_t>(o + q0) & 63) == 0)
        _mm512_stream_ps(o + q0, acc);
      else
        _mm512_mask_storeu_ps(o + q0, __mmask16((1u << std::min(16, Q - q0)) - 1), acc);
    }
  }
}
#endif

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
// Lanes [0, n) of an 8-wide store mask (n <= 8).
inline __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// acc[i] += the sum of a[i]'s eight lanes, for the nine filter-gradient taps.
inline void add_lane_sums(const __m256 a[9], double* acc) {
  alignas(32) float lanes[8];
  for (int i = 0; i < 9; ++i) {
    _mm256_store_ps(lanes, a[i]);
    float sum = 0;
    for (int l = 0; l < 8; ++l) sum += lanes[l];
    acc[i] += sum;
  }
}

// The same with 8-wide chunks (AVX2 + FMA), four chunks at a time so that four independent
// multiply-add chains hide the FMA latency; non-temporal stores need 32-byte alignment.
template <>
void stencil<float>(const float* __restrict padded, int wp, const float* __restrict f, int R, int S,
                    float bias, int P, int Q, float* __restrict out, bool stream) {
  const __m256 b = _mm256_set1_ps(bias);
  const __m256i tail = lane_mask(Q % 8);
  (void)stream;  // plain stores: non-temporal ones were slower on the AVX2 machine measured
  auto store = [&](float* o, __m256 v, bool full) {
    if (!full)
      _mm256_maskstore_ps(o, tail, v);
    else
      _mm256_storeu_ps(o, v);
  };
  for (int p = 0; p < P; ++p) {
    float* o = out + int64_t(p) * Q;
    int q0 = 0;
    for (; q0 + 32 <= Q; q0 += 32) {
      __m256 a0 = b, a1 = b, a2 = b, a3 = b;
      for (int r = 0; r < R; ++r) {
        const float* row = padded + int64_t(p + r) * wp + q0;
        for (int t = 0; t < S; ++t) {
          const __m256 ft = _mm256_broadcast_ss(f + r * S + t);
          a0 = _mm256_fmadd_ps(ft, _mm256_loadu_ps(row + t), a0);
          a1 = _mm256_fmadd_ps(ft, _mm256_loadu_ps(row + t + 8), a1);
          a2 = _mm256_fmadd_ps(ft, _mm256_loadu_ps(row + t + 16), a2);
          a3 = _mm256_fmadd_ps(ft, _mm256_loadu_ps(row + t + 24), a3);
        }
      }
      store(o + q0, a0, true);
      store(o + q0 + 8, a1, true);
      store(o + q0 + 16, a2, true);
      store(o + q0 + 24, a3, true);
    }
    for (; q0 < Q; q0 += 8) {
      __m256 acc = b;
      for (int r = 0; r < R; ++r) {
        const float* row = padded + int64_t(p + r) * wp + q0;
        for (int t = 0; t < S; ++t)
          acc = _mm256_fmadd_ps(_mm256_broadcast_ss(f + r * S + t), _mm256_loadu_ps(row + t), acc);
      }
      store(o + q0, acc, q0 + 8 <= Q);
    }
  }
}

// One input row at columns q0 - 1 .. q0 + 16 as six vectors: v[2t], v[2t + 1] = columns
// q0 + t - 1 + [0, 8) and + [8, 16) (filter column t); the two that would cross the plane's left
// or right edge are masked loads (zeros there, nothing touched outside).
template <bool kLeftEdge, bool kRightEdge>
inline void stencil3x3_row(const float* __restrict row, __m256 v[6]) {
  const __m256i not_first = _mm256_setr_epi32(0, -1, -1, -1, -1, -1, -1, -1);
  const __m256i not_last = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
  v[0] = kLeftEdge ? _mm256_maskload_ps(row - 1, not_first) : _mm256_loadu_ps(row - 1);
  v[1] = _mm256_loadu_ps(row + 7);
  v[2] = _mm256_loadu_ps(row);
  v[3] = _mm256_loadu_ps(row + 8);
  v[4] = _mm256_loadu_ps(row + 1);
  v[5] = kRightEdge ? _mm256_maskload_ps(row + 9, not_last) : _mm256_loadu_ps(row + 9);
}

// Output rows p .. p + 3 (those < H), columns [q0, q0 + 16), from input rows p - 1 .. p + 4:
// eight accumulators (four rows x two vectors); each input row is loaded once and feeds the up
// to three output rows it lies under, the filter taps broadcast as needed. Each output sums its
// taps in the order r, then t (as the reference loops).
template <bool kLeftEdge, bool kRightEdge>
inline void stencil3x3_block(const float* __restrict x, int H, int W, int p, int q0,
                             const float* __restrict f, __m256 b, float* __restrict o) {
  __m256 acc[4][2];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = b;
  const float* row = x + int64_t(p) * W + q0;
#pragma GCC unroll 6
  for (int rr = -1; rr <= 4; ++rr) {  // input row p + rr
    if (p + rr < 0 || p + rr >= H) continue;
    __m256 v[6];
    stencil3x3_row<kLeftEdge, kRightEdge>(row + int64_t(rr) * W, v);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // output row p + i takes this row under filter row rr - i + 1
      const int fr = rr - i + 1;
      if (fr < 0 || fr > 2) continue;
#pragma GCC unroll 3
      for (int t = 0; t < 3; ++t) {
        const __m256 ft = _mm256_broadcast_ss(f + fr * 3 + t);
        acc[i][0] = _mm256_fmadd_ps(ft, v[2 * t], acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ft, v[2 * t + 1], acc[i][1]);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    if (p + i >= H) break;
    _mm256_storeu_ps(o + int64_t(i) * W, acc[i][0]);
    _mm256_storeu_ps(o + int64_t(i) * W + 8, acc[i][1]);
  }
}

// The 3x3, padding-1, stride-1 stencil straight from the unpadded plane x [H, W] (W % 16 == 0):
// out [H, W] = bias + sum_{r,t} f[r * 3 + t] * x[p + r - 1][q + t - 1], zero outside the plane.
// Four output rows x 16 columns at a time (stencil3x3_block); rows outside the plane are
// skipped. No padded copy of the plane is made. (Measured on the AVX2 machine, one core, a
// 128-channel 32 x 32 image in cache, 64-byte aligned: 40.3 us against 45.7 for blocks of two
// rows x 32 columns, which loaded every input row twice.)
void stencil3x3_direct(const float* __restrict x, int H, int W, const float* __restrict f,
                       float bias, float* __restrict out) {
  const __m256 b = _mm256_set1_ps(bias);
  for (int p = 0; p < H; p += 4) {
    float* o = out + int64_t(p) * W;
    for (int q0 = 0; q0 < W; q0 += 16) {
      const bool left = q0 == 0, right = q0 + 16 == W;
      if (left && right)
        stencil3x3_block<true, true>(x, H, W, p, q0, f, b, o + q0);
      else if (left)
        stencil3x3_block<true, false>(x, H, W, p, q0, f, b, o + q0);
      else if (right)
        stencil3x3_block<false, true>(x, H, W, p, q0, f, b, o + q0);
      else
        stencil3x3_block<false, false>(x, H, W, p, q0, f, b, o + q0);
    }
  }
}

// The 3x3, padding-1 filter gradient straight from the unpadded plane x [H, W] (W % 8 == 0; the
// output is H x W): acc[r * 3 + t] += sum_{p,q} dy[p][q] x[p + r - 1][q + t - 1]. Per 8-wide
// column chunk, nine accumulators (a) over the rows; loads crossing the plane's left or right edge
// are masked (zeros there), rows outside it skipped.
template <bool kLeftEdge, bool kRightEdge>
void filter_grad3x3_chunk(const float* __restrict x, const float* __restrict dy, int H, int W,
                          int q0, __m256 (&sums)[9]) {
  const __m256i not_first = _mm256_setr_epi32(0, -1, -1, -1, -1, -1, -1, -1);
  const __m256i not_last = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
  __m256 a[9];  // in registers over the rows
  for (int i = 0; i < 9; ++i) a[i] = sums[i];
  auto load = [&](const float* row, int t) {  // x[ih][q0 + t - 1 .. q0 + t + 6], zero outside
    return (kLeftEdge && t == 0)    ? _mm256_maskload_ps(row - 1, not_first)
           : (kRightEdge && t == 2) ? _mm256_maskload_ps(row + 1, not_last)
                                    : _mm256_loadu_ps(row + t - 1);
  };
  // Two output rows p, p + 1 per pass: input rows p - 1 .. p + 2, each loaded once (at its three
  // offsets) for both: 14 loads per 18 multiply-adds instead of 20.
  int p = 0;
  for (; p + 1 < H; p += 2) {
    const __m256 g0 = _mm256_loadu_ps(dy + int64_t(p) * W + q0);
    const __m256 g1 = _mm256_loadu_ps(dy + int64_t(p + 1) * W + q0);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const int ih = p + j - 1;
      if (ih < 0 || ih >= H) continue;
      const float* row = x + int64_t(ih) * W + q0;
#pragma GCC unroll 3
      for (int t = 0; t < 3; ++t) {
        const __m256 v = load(row, t);
        if (j <= 2) a[j * 3 + t] = _mm256_fmadd_ps(g0, v, a[j * 3 + t]);
        if (j >= 1) a[(j - 1) * 3 + t] = _mm256_fmadd_ps(g1, v, a[(j - 1) * 3 + t]);
      }
    }
  }
  if (p < H) {  // an odd last row
    const __m256 g = _mm256_loadu_ps(dy + int64_t(p) * W + q0);
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r) {
      const int ih = p + r - 1;
      if (ih < 0 || ih >= H) continue;
      const float* row = x + int64_t(ih) * W + q0;
#pragma GCC unroll 3
      for (int t = 0; t < 3; ++t) a[r * 3 + t] = _mm256_fmadd_ps(g, load(row, t), a[r * 3 + t]);
    }
  }
  for (int i = 0; i < 9; ++i) sums[i] = a[i];
}

// The nine accumulators run over the whole plane and are reduced to acc once (a reduction per
// chunk cost about a quarter of the chunk's own work at W = 32).
void filter_grad3x3_direct(const float* __restrict x, const float* __restrict dy, int H, int W,
                           double* acc) {
  __m256 a[9];
  for (int i = 0; i < 9; ++i) a[i] = _mm256_setzero_ps();
  for (int q0 = 0; q0 < W; q0 += 8) {
    const bool left = q0 == 0, right = q0 + 8 == W;
    if (left && right)
      filter_grad3x3_chunk<true, true>(x, dy, H, W, q0, a);
    else if (left)
      filter_grad3x3_chunk<true, false>(x, dy, H, W, q0, a);
    else if (right)
      filter_grad3x3_chunk<false, true>(x, dy, H, W, q0, a);
    else
      filter_grad3x3_chunk<false, false>(x, dy, H, W, q0, a);
  }
  add_lane_sums(a, acc);
}
#endif

// Plain loops for any stride: y = conv(x) on one plane.
template <class T>
void plane_forward_any(const ConvShape& s, const T* xp, const T* f, T b, T* yp) {
  const int P = s.p(), Q = s.q();
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q) {
      T acc = b;
      for (int r = 0; r < s.r; ++r) {
        const int h = p * s.stride - s.pad + r;
        if (h < 0 || h >= s.h) continue;
        for (int t = 0; t < s.s; ++t) {
          const int ww = q * s.stride - s.pad + t;
          if (ww >= 0 && ww < s.w) acc += xp[h * s.w + ww] * f[r * s.s + t];
        }
      }
      yp[p * Q + q] = acc;
    }
}

// acc[r * S + t] += sum_{p, q} dy[p][q] * padded[p + r][q + t] for one plane (stride 1).
template <class T>
void filter_grad_plane(const T* __restrict padded, int wp, const T* __restrict dy, int R, int S,
                       int P, int Q, T* __restrict part, double* acc) {
  // Lane-wise partial sums part[r * S + t][q] over the rows, reduced once per plane.
  std::fill(part, part + size_t(R) * S * Q, T(0));
  for (int p = 0; p < P; ++p) {
    const T* __restrict g = dy + int64_t(p) * Q;
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < S; ++t) {
        const T* __restrict row = padded + int64_t(p + r) * wp + t;
        T* __restrict pp = part + (r * S + t) * Q;
#pragma omp simd
        for (int q = 0; q < Q; ++q) pp[q] += g[q] * row[q];
      }
  }
  for (int i = 0; i < R * S; ++i) {
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int q = 0; q < Q; ++q) sum += part[i * Q + q];
    acc[i] += sum;
  }
}

#ifdef __AVX512F__
// Float 3x3: the nine partial sums of each 16-wide column chunk live in registers.
void filter_grad_plane_3x3(const float* __restrict padded, int wp, const float* __restrict dy,
                           int P, int Q, double* acc) {
  for (int q0 = 0; q0 < Q; q0 += 16) {
    const __mmask16 m = __mmask16((1u << std::min(16, Q - q0)) - 1);
    __m512 a[9];
    for (int i = 0; i < 9; ++i) a[i] = _mm512_setzero_ps();
    for (int p = 0; p < P; ++p) {
      const __m512 g = _mm512_maskz_loadu_ps(m, dy + int64_t(p) * Q + q0);
      for (int r = 0; r < 3; ++r) {
        const float* row = padded + int64_t(p + r) * wp + q0;
        for (int t = 0; t < 3; ++t)
          a[r * 3 + t] = _mm512_fmadd_ps(g, _mm512_loadu_ps(row + t), a[r * 3 + t]);
      }
    }
    alignas(64) float lanes[16];
    for (int i = 0; i < 9; ++i) {
      _mm512_store_ps(lanes, a[i]);
      float sum = 0;
      for (int l = 0; l < 16; ++l) sum += lanes[l];
      acc[i] += sum;
    }
  }
}
#endif

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
// The same with 8-wide chunks (AVX2 + FMA): nine accumulators, dy's tail lanes loaded as zeros.
void filter_grad_plane_3x3(const float* __restrict padded, int wp, const float* __restrict dy,
                           int P, int Q, double* acc) {
  for (int q0 = 0; q0 < Q; q0 += 8) {
    const __m256i m = lane_mask(std::min(8, Q - q0));
    __m256 a[9];
    for (int i = 0; i < 9; ++i) a[i] = _mm256_setzero_ps();
    for (int p = 0; p < P; ++p) {
      const __m256 g = _mm256_maskload_ps(dy + int64_t(p) * Q + q0, m);
      for (int r = 0; r < 3; ++r) {
        const float* row = padded + int64_t(p + r) * wp + q0;
        for (int t = 0; t < 3; ++t)
          a[r * 3 + t] = _mm256_fmadd_ps(g, _mm256_loadu_ps(row + t), a[r * 3 + t]);
      }
    }
    add_lane_sums(a, acc);
  }
}
#define DSC_DEPTHWISE_FILTER_GRAD_3X3
#endif
#ifdef __AVX512F__
#define DSC_DEPTHWISE_FILTER_GRAD_3X3
#endif

// Orders the non-temporal stores of this thread before what follows.
inline void store_fence() {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_sfence();
#endif
}

// The generic (strided) paths: calls fn(tap, input index) for every filter tap r * S + t of
// output (p, q) that lands inside the unpadded H x W plane.
template <class F>
inline void for_each_tap(const ConvShape& s, int p, int q, F&& fn) {
  for (int r = 0; r < s.r; ++r) {
    const int h = p * s.stride - s.pad + r;
    if (h < 0 || h >= s.h) continue;
    for (int t = 0; t < s.s; ++t) {
      const int ww = q * s.stride - s.pad + t;
      if (ww >= 0 && ww < s.w) fn(r * s.s + t, int64_t(h) * s.w + ww);
    }
  }
}

// ---- one plane (one image's channel c), on the calling thread --------------------------------

template <class T>
void plane_forward(const ConvShape& s, int c, const T* xp, const T* w, T b, T* yp, bool stream) {
  const T* f = w + int64_t(c) * s.r * s.s;
  if (s.stride != 1) return plane_forward_any(s, xp, f, b, yp);
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>)
    if (s.r == 3 && s.s == 3 && s.pad == 1 && s.w % 16 == 0)
      return stencil3x3_direct(xp, s.h, s.w, f, b, yp);
#endif
  const int wp = s.w + 2 * s.pad + 16;
  T* buf = thread_buffer<T, DepthwiseScratch>(size_t(s.h + 2 * s.pad) * wp);
  pad_plane(xp, s.h, s.w, s.pad, wp, buf);
  stencil(buf, wp, f, s.r, s.s, b, s.p(), s.q(), yp, stream);
}

// Stride 1 with pad <= R - 1 (and R == S): dx = stencil of dy padded by R - 1 - pad with the
// flipped filter.
bool backward_data_is_stencil(const ConvShape& s) {
  const int pr = s.r - 1 - s.pad, ps = s.s - 1 - s.pad;
  return s.stride == 1 && pr >= 0 && ps >= 0 && pr == ps;
}

template <class T>
void plane_backward_data(const ConvShape& s, int c, const T* dyp, const T* w, const T* flipped,
                         T* dxp, bool stream) {
  const int P = s.p(), Q = s.q(), RS = s.r * s.s;
  if (backward_data_is_stencil(s)) {
    const int pr = s.r - 1 - s.pad, wp = Q + 2 * pr + 16;
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (s.r == 3 && s.s == 3 && pr == 1 && Q % 16 == 0)  // then P = H and Q = W
        return stencil3x3_direct(dyp, P, Q, flipped + int64_t(c) * RS, 0.f, dxp);
#endif
    T* buf = thread_buffer<T, DepthwiseScratch>(size_t(P + 2 * pr) * wp);
    pad_plane(dyp, P, Q, pr, wp, buf);
    stencil(buf, wp, flipped + int64_t(c) * RS, s.r, s.s, T(0), s.h, s.w, dxp, stream);
    return;
  }
  const T* f = w + int64_t(c) * RS;
  std::fill(dxp, dxp + s.h * s.w, T(0));
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q) {
      const T g = dyp[p * Q + q];
      for_each_tap(s, p, q, [&](int tap, int64_t in) { dxp[in] += g * f[tap]; });
    }
}

// acc[0 .. R*S) += filter gradient taps, acc[R*S] += bias gradient, for one plane.
template <class T>
void plane_backward_filter(const ConvShape& s, const T* xp, const T* dyp, double* acc) {
  const int P = s.p(), Q = s.q(), H = s.h, W = s.w, R = s.r, S = s.s;
  bool direct = false;  // the AVX2 3x3 padding-1 gradient reads the plane itself
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) {
    if (s.stride == 1 && R == 3 && S == 3 && s.pad == 1 && W % 8 == 0) {
      filter_grad3x3_direct(xp, dyp, H, W, acc);
      direct = true;
    }
  }
#endif
  if (s.stride == 1 && !direct) {
    const int wp = W + 2 * s.pad + 16;
    T* buf = thread_buffer<T, DepthwiseScratch>(size_t(H + 2 * s.pad) * wp + size_t(R) * S * Q);
    pad_plane(xp, H, W, s.pad, wp, buf);
    bool done = false;
#ifdef DSC_DEPTHWISE_FILTER_GRAD_3X3
    if constexpr (std::is_same_v<T, float>) {
      if (R == 3 && S == 3) {
        filter_grad_plane_3x3(buf, wp, dyp, P, Q, acc);
        done = true;
      }
    }
#endif
    if (!done) filter_grad_plane(buf, wp, dyp, R, S, P, Q, buf + size_t(H + 2 * s.pad) * wp, acc);
  } else if (!direct) {
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q) {
        const T g = dyp[p * Q + q];
        for_each_tap(s, p, q, [&](int tap, int64_t in) { acc[tap] += g * xp[in]; });
      }
  }
  T db = 0;
#pragma omp simd reduction(+ : db)
  for (int i = 0; i < P * Q; ++i) db += dyp[i];
  acc[R * S] += db;
}

}  // namespace

template <class T>
std::vector<T> flipped_filters(const ConvShape& s, const T* w) {
  const int RS = s.r * s.s;
  std::vector<T> flipped(backward_data_is_stencil(s) ? size_t(s.c) * RS : 0);
  for (size_t i = 0; i < flipped.size(); ++i) flipped[i] = w[(i / RS) * RS + (RS - 1 - i % RS)];
  return flipped;
}

// ---- whole batch, planes spread over the OpenMP threads -----------------------------------------

template <class T>
void forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t planes = int64_t(s.n) * s.c, in = int64_t(s.h) * s.w, out = int64_t(s.p()) * s.q();
#pragma omp parallel num_threads(num_threads())
  {
#pragma omp for schedule(static) nowait
    for (int64_t pl = 0; pl < planes; ++pl) {
      const int c = int(pl % s.c);
      plane_forward(s, c, x + pl * in, w, bias ? bias[c] : T(0), y + pl * out, true);
    }
    store_fence();  // by each storing thread, before the region's closing barrier
  }
}

template <class T>
void backward_data(const ConvShape& s, const T* dy, const T* w, T* dx) {
  const int64_t planes = int64_t(s.n) * s.c, in = int64_t(s.h) * s.w, out = int64_t(s.p()) * s.q();
  const std::vector<T> flipped = flipped_filters(s, w);
#pragma omp parallel num_threads(num_threads())
  {
#pragma omp for schedule(static) nowait
    for (int64_t pl = 0; pl < planes; ++pl)
      plane_backward_data(s, int(pl % s.c), dy + pl * out, w, flipped.data(), dx + pl * in, true);
    store_fence();
  }
}

template <class T>
void backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  const int64_t planes = int64_t(s.n) * s.c, in = int64_t(s.h) * s.w, out = int64_t(s.p()) * s.q();
  const int threads = num_threads(), per = s.r * s.s + 1;  // R*S taps, then the bias gradient
  std::vector<double> partial(size_t(threads) * s.c * per, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* mine = partial.data() + size_t(omp_get_thread_num()) * s.c * per;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl)
      plane_backward_filter(s, x + pl * in, dy + pl * out, mine + (pl % s.c) * per);
  }
  for (int c = 0; c < s.c; ++c)
    for (int i = 0; i < per; ++i) {
      double sum = 0;
      for (int th = 0; th < threads; ++th) sum += partial[(size_t(th) * s.c + c) * per + i];
      if (i < per - 1)
        dw[int64_t(c) * (per - 1) + i] = T(sum);
      else if (dbias)
        dbias[c] = T(sum);
    }
}

// ---- one image on the calling thread (for fused callers; outputs stay in cache) ----------------

template <class T>
void image_forward(const ConvShape& s, const T* x, const T* w, T* y, int64_t ld) {
  const int64_t in = int64_t(s.h) * s.w, out = ld > 0 ? ld : int64_t(s.p()) * s.q();
  for (int c = 0; c < s.c; ++c) plane_forward(s, c, x + c * in, w, T(0), y + c * out, false);
}

template <class T>
void image_backward_data(const ConvShape& s, const T* dy, const T* w, const T* flipped, T* dx,
                         bool stream, int64_t ld) {
  const int64_t in = int64_t(s.h) * s.w, out = ld > 0 ? ld : int64_t(s.p()) * s.q();
  for (int c = 0; c < s.c; ++c)
    plane_backward_data(s, c, dy + c * out, w, flipped, dx + c * in, stream);
  if (stream) store_fence();
}

template <class T>
void image_backward_filter(const ConvShape& s, const T* x, const T* dy, double* acc, int64_t ld) {
  const int64_t in = int64_t(s.h) * s.w, out = ld > 0 ? ld : int64_t(s.p()) * s.q();
  const int per = s.r * s.s + 1;
  for (int c = 0; c < s.c; ++c)
    plane_backward_filter(s, x + c * in, dy + c * out, acc + int64_t(c) * per);
}

#define DSC_INSTANTIATE(T)                                                                        \
  template void forward<T>(const ConvShape&, const T*, const T*, const T*, T*);                   \
  template void backward_data<T>(const ConvShape&, const T*, const T*, T*);                       \
  template void backward_filter<T>(const ConvShape&, const T*, const T*, T*, T*);                 \
  template void image_forward<T>(const ConvShape&, const T*, const T*, T*, int64_t);              \
  template std::vector<T> flipped_filters<T>(const ConvShape&, const T*);                         \
  template void image_backward_data<T>(const ConvShape&, const T*, const T*, const T*, T*, bool,  \
                                       int64_t);                                                  \
  template void image_backward_filter<T>(const ConvShape&, const T*, const T*, double*, int64_t);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu::depthwise
