// Winograd F(4x4, 3x3) convolution on the CPU (float, stride 1, 3x3, groups 1): forward,
// backward-data (= forward with the flipped, transposed filter and pad' = 2 - pad) and
// backward-filter (the adjoint: dU = sum over tiles of (A dY A^T) (x) (B^T d B), dw = G^T dU G).
//
// Layouts: x [N, C, H, W], w [K, C, 3, 3], y [N, K, P, Q]. Tiles are numbered over the whole batch
// (t = (n * TH + ti) * TW + tj, TH = ceil(P/4), TW = ceil(Q/4)) and processed in blocks of kBlock
// tiles per OpenMP task; inside a block the transformed data is V[36][C][kBlock] (input),
// M[36][K][kBlock] (output), 16 tiles per AVX-512 vector or 8 per AVX2 vector (two builds of the
// transforms below). Input tiles are read as masked row loads (zeros outside the image) and turned
// tiles-per-vector by register transposes (16x16 / 8x8); whole 4x4 output tiles move the same way,
// tiles crossing the output border with masked scatters/gathers (AVX-512) or per-element copies
// (AVX2), so borders, padding and partial tiles need no other special case. The 36 products per
// block run on the micro-kernel of winograd_gemm.h (forward, backward-data) or single-threaded
// OpenBLAS (backward-filter, whose reduction runs over the tiles). Without AVX-512 or AVX2 + FMA
// applicable() is false and conv2d uses im2col + GEMM.
// Accuracy: max |error| / max |output| ~ 1e-5 at C = 128 (fp32; tests allow 2e-4). Tested (through
// conv2d_*) against naive loops in tests/kernels/test_conv2d_cpu.cpp.
#include "core/cpu/winograd.h"

// GCC 12 reports its own AVX-512 intrinsic headers (the _mm512_undefined_* placeholders) as
// "may be used uninitialized"; the warning is a known false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/cpu/gemm.h"
#include "core/cpu/parallel.h"
#include "core/cpu/winograd_gemm.h"

namespace dsc::cpu::winograd {

#if defined(__AVX512F__) && defined(__AVX512VL__)
#define DSC_WINOGRAD_LANES 16
#elif DSC_CPU_MICRO_KERNEL == 256
#define DSC_WINOGRAD_LANES 8
#endif

#ifdef DSC_WINOGRAD_LANES
namespace {

constexpr int kBlock = 32;  // tiles per task (a multiple of the lanes)

struct Tiles {
  int th, tw, per_image;
  int64_t total;
  explicit Tiles(const ConvShape& s)
      : th((s.p() + 3) / 4), tw((s.q() + 3) / 4), per_image(th * tw) {
    total = int64_t(s.n) * per_image;
  }
};

struct WinogradScratch;  // thread_buffer tag: slots 0 and 1 per-block tiles, 2 the filters

// Scalar filter transforms: U = G g G^T (6x6 from 3x3) and its adjoint dg = G^T dU G.
const float kG[6][3] = {{1.f / 4, 0, 0},
                        {-1.f / 6, -1.f / 6, -1.f / 6},
                        {-1.f / 6, 1.f / 6, -1.f / 6},
                        {1.f / 24, 1.f / 12, 1.f / 6},
                        {1.f / 24, -1.f / 12, 1.f / 6},
                        {0, 0, 1.f}};

// The transformed filter, packed for the micro-kernel: U[e][k / G][c][k % G] (e = 6 * a + b,
// G = micro::kRowGroup), K rounded up to kp = a multiple of G with zero rows. From
// w[k][c][3][3], or with flip = true from w[c][k][2 - r][2 - t] (the backward-data filter; K and
// C are then the transformed conv's roles).
int padded_k(int K) { return micro::padded_rows(K); }

void filter_transform(const float* w, int K, int C, bool flip, float* U) {
  const int kp = padded_k(K), G = micro::kRowGroup;
  if (kp != K) std::fill(U, U + size_t(36) * kp * C, 0.f);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c) {
      float g[3][3], tmp[6][3];
      for (int r = 0; r < 3; ++r)
        for (int t = 0; t < 3; ++t)
          g[r][t] = flip ? w[((int64_t(c) * K + k) * 3 + 2 - r) * 3 + 2 - t]
                         : w[((int64_t(k) * C + c) * 3 + r) * 3 + t];
      for (int a = 0; a < 6; ++a)
        for (int t = 0; t < 3; ++t)
          tmp[a][t] = kG[a][0] * g[0][t] + kG[a][1] * g[1][t] + kG[a][2] * g[2][t];
      for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b)
          U[((int64_t(a * 6 + b) * (kp / G) + k / G) * C + c) * G + k % G] =
              tmp[a][0] * kG[b][0] + tmp[a][1] * kG[b][1] + tmp[a][2] * kG[b][2];
    }
}

// One vector of tiles (16 per AVX-512 vector, 8 per AVX2 vector) and the arithmetic the 1-D
// transforms below need, so that one copy of them serves both builds.
#if DSC_WINOGRAD_LANES == 16
using Vec = __m512;
inline Vec set1(float v) { return _mm512_set1_ps(v); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }   // a b + c
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); } // c - a b
#else
using Vec = __m256;
inline Vec set1(float v) { return _mm256_set1_ps(v); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a, b, c); }
#endif

// 1-D transforms on a vector of tiles: B^T (6x6), A^T (4x6) and A (6x4) applied to a column.
inline void bt6(const Vec i[6], Vec o[6]) {
  const Vec c4 = set1(4.f), c5 = set1(5.f), c2 = set1(2.f);
  o[0] = fmadd(c4, i[0], fnmadd(c5, i[2], i[4]));
  const Vec a = fnmadd(c4, i[2], i[4]), b = fnmadd(c4, i[1], i[3]);
  o[1] = add(a, b);
  o[2] = sub(a, b);
  const Vec c = sub(i[4], i[2]), d = mul(c2, sub(i[3], i[1]));
  o[3] = add(c, d);
  o[4] = sub(c, d);
  o[5] = fmadd(c4, i[1], fnmadd(c5, i[3], i[5]));
}
inline void at6(const Vec i[6], Vec o[4]) {
  const Vec s12 = add(i[1], i[2]), d12 = sub(i[1], i[2]);
  const Vec s34 = add(i[3], i[4]), d34 = sub(i[3], i[4]);
  o[0] = add(add(i[0], s12), s34);
  o[1] = fmadd(set1(2.f), d34, d12);
  o[2] = fmadd(set1(4.f), s34, s12);
  o[3] = add(fmadd(set1(8.f), d34, d12), i[5]);
}
inline void a4(const Vec i[4], Vec o[6]) {
  const Vec s02 = add(i[0], i[2]), s13 = add(i[1], i[3]);
  const Vec q02 = fmadd(set1(4.f), i[2], i[0]);
  const Vec q13 = mul(set1(2.f), fmadd(set1(4.f), i[3], i[1]));
  o[0] = i[0];
  o[1] = add(s02, s13);
  o[2] = sub(s02, s13);
  o[3] = add(q02, q13);
  o[4] = sub(q02, q13);
  o[5] = i[3];
}

#if DSC_WINOGRAD_LANES == 16
// Lane geometry of 16 consecutive tiles starting at t0: n, tile row and column per lane.
struct Lanes {
  __m512i n, ti, tj;
  __mmask16 exists;
};
Lanes lanes_of(const Tiles& g, int64_t t0) {
  alignas(64) int n[16], ti[16], tj[16];
  __mmask16 ex = 0;
  for (int l = 0; l < 16; ++l) {
    const int64_t t = t0 + l;
    const int64_t tc = std::min(t, g.total - 1);
    n[l] = int(tc / g.per_image);
    const int r = int(tc % g.per_image);
    ti[l] = r / g.tw, tj[l] = r % g.tw;
    if (t < g.total) ex |= __mmask16(1u << l);
  }
  return {_mm512_load_si512(n), _mm512_load_si512(ti), _mm512_load_si512(tj), ex};
}

using micro::transpose16;

// V[e][c][0..nb) = B^T d B for the 6x6 input tiles of tiles t0 .. t0 + nb (nb % 16 == 0).
void input_transform(const ConvShape& s, const Tiles& g, const float* x, int64_t t0, int nb,
                     float* V) {
  const int C = s.c, H = s.h, W = s.w;
  for (int grp = 0; grp < nb; grp += 16) {
    const Lanes L = lanes_of(g, t0 + grp);
    const __m512i h0 =
        _mm512_sub_epi32(_mm512_mullo_epi32(L.ti, _mm512_set1_epi32(4)), _mm512_set1_epi32(s.pad));
    const __m512i w0 =
        _mm512_sub_epi32(_mm512_mullo_epi32(L.tj, _mm512_set1_epi32(4)), _mm512_set1_epi32(s.pad));
    const __m512i base = _mm512_add_epi32(_mm512_mullo_epi32(L.n, _mm512_set1_epi32(C * H * W)),
                                          _mm512_mullo_epi32(h0, _mm512_set1_epi32(W)));
    __mmask16 row_ok[6], col_ok[6];
    for (int a = 0; a < 6; ++a) {
      const __m512i h = _mm512_add_epi32(h0, _mm512_set1_epi32(a));
      const __m512i w = _mm512_add_epi32(w0, _mm512_set1_epi32(a));
      row_ok[a] = _mm512_mask_cmplt_epi32_mask(
          _mm512_cmpge_epi32_mask(h, _mm512_setzero_si512()) & L.exists, h, _mm512_set1_epi32(H));
      col_ok[a] = _mm512_mask_cmplt_epi32_mask(_mm512_cmpge_epi32_mask(w, _mm512_setzero_si512()),
                                               w, _mm512_set1_epi32(W));
    }
    // Per lane: the tile's top-left element and, per tile row a, which of its 6 columns exist
    // (0 for rows outside the image and for lanes past the last tile).
    alignas(64) int offs[16];
    _mm512_store_si512(offs, _mm512_add_epi32(base, w0));
    __mmask8 load_mask[16][6];
    for (int l = 0; l < 16; ++l) {
      __mmask8 cols = 0;
      for (int b = 0; b < 6; ++b) cols |= __mmask8(((col_ok[b] >> l) & 1) << b);
      for (int a = 0; a < 6; ++a) load_mask[l][a] = ((row_ok[a] >> l) & 1) ? cols : 0;
    }
    for (int c = 0; c < C; ++c) {
      const float* xc = x + int64_t(c) * H * W;
      __m512 d[6][6], t[6][6];
      // Rows (2p, 2p + 1) of the 16 tiles as 16 vectors [row 2p, cols 0..7 | row 2p+1, ...],
      // transposed to one (row, column) position per vector: no gathers.
      for (int p = 0; p < 3; ++p) {
        __m512 r[16];
        for (int l = 0; l < 16; ++l) {
          const float* src = xc + offs[l] + 2 * p * W;
          const __m256 lo = _mm256_maskz_loadu_ps(load_mask[l][2 * p], src);
          const __m256 hi = _mm256_maskz_loadu_ps(load_mask[l][2 * p + 1], src + W);
          r[l] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                                     _mm256_castps_pd(hi), 1));
        }
        transpose16(r);
        for (int b = 0; b < 6; ++b) d[2 * p][b] = r[b], d[2 * p + 1][b] = r[8 + b];
      }
      for (int b = 0; b < 6; ++b) {  // columns: t = B^T d
        __m512 col[6], out[6];
        for (int a = 0; a < 6; ++a) col[a] = d[a][b];
        bt6(col, out);
        for (int a = 0; a < 6; ++a) t[a][b] = out[a];
      }
      for (int a = 0; a < 6; ++a) {  // rows: V = t B
        __m512 out[6];
        bt6(t[a], out);
        for (int b = 0; b < 6; ++b)
          _mm512_storeu_ps(V + (int64_t(a * 6 + b) * C + c) * nb + grp, out[b]);
      }
    }
  }
}

// y (tiles t0 .. t0 + nb) = A^T M A + bias, from M[e][k][0..nb) (kp >= K rows per e).
void output_transform(const ConvShape& s, const Tiles& g, const float* M, int kp, const float* bias,
                      int64_t t0, int nb, float* y) {
  const int K = s.k, P = s.p(), Q = s.q();
  for (int grp = 0; grp < nb; grp += 16) {
    const Lanes L = lanes_of(g, t0 + grp);
    const __m512i p0 = _mm512_mullo_epi32(L.ti, _mm512_set1_epi32(4)),
                  q0 = _mm512_mullo_epi32(L.tj, _mm512_set1_epi32(4));
    const __m512i base =
        _mm512_add_epi32(_mm512_mullo_epi32(L.n, _mm512_set1_epi32(K * P * Q)),
                         _mm512_add_epi32(_mm512_mullo_epi32(p0, _mm512_set1_epi32(Q)), q0));
    __mmask16 row_ok[4], col_ok[4];
    for (int i = 0; i < 4; ++i) {
      row_ok[i] = _mm512_mask_cmplt_epi32_mask(L.exists, _mm512_add_epi32(p0, _mm512_set1_epi32(i)),
                                               _mm512_set1_epi32(P));
      col_ok[i] =
          _mm512_cmplt_epi32_mask(_mm512_add_epi32(q0, _mm512_set1_epi32(i)), _mm512_set1_epi32(Q));
    }
    // All 16 tiles inside the output: whole 4x4 blocks move with 16-byte loads / stores.
    const bool full = __mmask16(row_ok[3] & col_ok[3]) == 0xFFFF;
    alignas(64) int offs[16];
    _mm512_store_si512(offs, base);
    for (int k = 0; k < K; ++k) {
      __m512 m[6][6], t[4][6];
      for (int e = 0; e < 36; ++e)
        m[e / 6][e % 6] = _mm512_loadu_ps(M + (int64_t(e) * kp + k) * nb + grp);
      for (int b = 0; b < 6; ++b) {  // columns: t = A^T m
        __m512 col[6], out[4];
        for (int a = 0; a < 6; ++a) col[a] = m[a][b];
        at6(col, out);
        for (int i = 0; i < 4; ++i) t[i][b] = out[i];
      }
      const __m512 bv = _mm512_set1_ps(bias ? bias[k] : 0.f);
      float* yk = y + int64_t(k) * P * Q;
      __m512 out[16];                // out[4 * i + j]: output (i, j) of the 16 tiles
      for (int i = 0; i < 4; ++i) {  // rows: Y = t A
        at6(t[i], out + 4 * i);
        for (int j = 0; j < 4; ++j) out[4 * i + j] = _mm512_add_ps(out[4 * i + j], bv);
      }
      if (full) {  // transpose to one 4x4 tile per vector: four 16-byte row stores per tile
        transpose16(out);
        for (int l = 0; l < 16; ++l) {  // the lane index must be a constant (any -O level)
          float* o = yk + offs[l];
          _mm_storeu_ps(o, _mm512_extractf32x4_ps(out[l], 0));
          _mm_storeu_ps(o + Q, _mm512_extractf32x4_ps(out[l], 1));
          _mm_storeu_ps(o + 2 * Q, _mm512_extractf32x4_ps(out[l], 2));
          _mm_storeu_ps(o + 3 * Q, _mm512_extractf32x4_ps(out[l], 3));
        }
        continue;
      }
      for (int i = 0; i < 4; ++i) {
        const __m512i ii = _mm512_add_epi32(base, _mm512_set1_epi32(i * Q));
        for (int j = 0; j < 4; ++j)
          _mm512_mask_i32scatter_ps(yk, row_ok[i] & col_ok[j],
                                    _mm512_add_epi32(ii, _mm512_set1_epi32(j)), out[4 * i + j], 4);
      }
    }
  }
}

// dM[e][k][0..nb) = A dY A^T for the 4x4 output-gradient tiles of tiles t0 .. t0 + nb.
void grad_output_transform(const ConvShape& s, const Tiles& g, const float* dy, int64_t t0, int nb,
                           float* dM) {
  const int K = s.k, P = s.p(), Q = s.q();
  for (int grp = 0; grp < nb; grp += 16) {
    const Lanes L = lanes_of(g, t0 + grp);
    const __m512i p0 = _mm512_mullo_epi32(L.ti, _mm512_set1_epi32(4)),
                  q0 = _mm512_mullo_epi32(L.tj, _mm512_set1_epi32(4));
    const __m512i base =
        _mm512_add_epi32(_mm512_mullo_epi32(L.n, _mm512_set1_epi32(K * P * Q)),
                         _mm512_add_epi32(_mm512_mullo_epi32(p0, _mm512_set1_epi32(Q)), q0));
    __mmask16 row_ok[4], col_ok[4];
    for (int i = 0; i < 4; ++i) {
      row_ok[i] = _mm512_mask_cmplt_epi32_mask(L.exists, _mm512_add_epi32(p0, _mm512_set1_epi32(i)),
                                               _mm512_set1_epi32(P));
      col_ok[i] =
          _mm512_cmplt_epi32_mask(_mm512_add_epi32(q0, _mm512_set1_epi32(i)), _mm512_set1_epi32(Q));
    }
    // All 16 tiles inside the output: whole 4x4 blocks move with 16-byte loads / stores.
    const bool full = __mmask16(row_ok[3] & col_ok[3]) == 0xFFFF;
    alignas(64) int offs[16];
    _mm512_store_si512(offs, base);
    for (int k = 0; k < K; ++k) {
      const float* dyk = dy + int64_t(k) * P * Q;
      __m512 d[4][4], t[6][4];
      if (full) {  // one 4x4 tile per vector, transposed to one (i, j) position per vector
        __m512 r[16];
        for (int l = 0; l < 16; ++l) {
          const float* src = dyk + offs[l];
          r[l] = _mm512_castps128_ps512(_mm_loadu_ps(src));
          r[l] = _mm512_insertf32x4(r[l], _mm_loadu_ps(src + Q), 1);
          r[l] = _mm512_insertf32x4(r[l], _mm_loadu_ps(src + 2 * Q), 2);
          r[l] = _mm512_insertf32x4(r[l], _mm_loadu_ps(src + 3 * Q), 3);
        }
        transpose16(r);
        for (int i = 0; i < 16; ++i) d[i / 4][i % 4] = r[i];
      } else {
        for (int i = 0; i < 4; ++i) {
          const __m512i ii = _mm512_add_epi32(base, _mm512_set1_epi32(i * Q));
          for (int j = 0; j < 4; ++j)
            d[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), row_ok[i] & col_ok[j],
                                               _mm512_add_epi32(ii, _mm512_set1_epi32(j)), dyk, 4);
        }
      }
      for (int j = 0; j < 4; ++j) {  // columns: t = A d
        __m512 col[4], out[6];
        for (int i = 0; i < 4; ++i) col[i] = d[i][j];
        a4(col, out);
        for (int a = 0; a < 6; ++a) t[a][j] = out[a];
      }
      for (int a = 0; a < 6; ++a) {  // rows: dM = t A^T
        __m512 out[6];
        a4(t[a], out);
        for (int b = 0; b < 6; ++b)
          _mm512_storeu_ps(dM + (int64_t(a * 6 + b) * K + k) * nb + grp, out[b]);
      }
    }
  }
}

#else  // AVX2 + FMA: 8 tiles per vector

// Lane geometry of 8 consecutive tiles starting at t0: image, tile row and column per lane (lanes
// past the last tile repeat it and are marked as not existing).
struct Lanes {
  int n[8], ti[8], tj[8];
  bool exists[8];
  bool all_exist;
};
Lanes lanes_of(const Tiles& g, int64_t t0) {
  Lanes L;
  L.all_exist = true;
  for (int l = 0; l < 8; ++l) {
    const int64_t t = t0 + l;
    const int64_t tc = std::min(t, g.total - 1);
    L.n[l] = int(tc / g.per_image);
    const int r = int(tc % g.per_image);
    L.ti[l] = r / g.tw, L.tj[l] = r % g.tw;
    L.exists[l] = t < g.total;
    L.all_exist = L.all_exist && L.exists[l];
  }
  return L;
}

// In-register transpose of an 8x8 float matrix held as 8 row vectors.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// V[e][c][0..nb) = B^T d B for the 6x6 input tiles of tiles t0 .. t0 + nb (nb % 8 == 0).
void input_transform(const ConvShape& s, const Tiles& g, const float* x, int64_t t0, int nb,
                     float* V) {
  const int C = s.c, H = s.h, W = s.w;
  for (int grp = 0; grp < nb; grp += 8) {
    const Lanes L = lanes_of(g, t0 + grp);
    // Per lane: the tile's top-left element and, per tile row a, a load mask of its 6 columns
    // that exist (none for rows outside the image and for lanes past the last tile).
    int64_t offs[8];
    alignas(32) int mask[8][6][8];
    for (int l = 0; l < 8; ++l) {
      const int h0 = L.ti[l] * 4 - s.pad, w0 = L.tj[l] * 4 - s.pad;
      offs[l] = int64_t(L.n[l]) * C * H * W + int64_t(h0) * W + w0;
      for (int a = 0; a < 6; ++a) {
        const bool row = L.exists[l] && h0 + a >= 0 && h0 + a < H;
        for (int b = 0; b < 8; ++b)
          mask[l][a][b] = row && b < 6 && w0 + b >= 0 && w0 + b < W ? -1 : 0;
      }
    }
    __m256i m[8][6];
    for (int l = 0; l < 8; ++l)
      for (int a = 0; a < 6; ++a)
        m[l][a] = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask[l][a]));
    for (int c = 0; c < C; ++c) {
      const float* xc = x + int64_t(c) * H * W;
      __m256 d[6][6], t[6][6];
      // Row a of the 8 tiles as 8 vectors [cols 0..7], transposed to one column per vector.
      for (int a = 0; a < 6; ++a) {
        __m256 r[8];
        for (int l = 0; l < 8; ++l) r[l] = _mm256_maskload_ps(xc + offs[l] + a * W, m[l][a]);
        transpose8(r);
        for (int b = 0; b < 6; ++b) d[a][b] = r[b];
      }
      for (int b = 0; b < 6; ++b) {  // columns: t = B^T d
        __m256 col[6], out[6];
        for (int a = 0; a < 6; ++a) col[a] = d[a][b];
        bt6(col, out);
        for (int a = 0; a < 6; ++a) t[a][b] = out[a];
      }
      for (int a = 0; a < 6; ++a) {  // rows: V = t B
        __m256 out[6];
        bt6(t[a], out);
        for (int b = 0; b < 6; ++b)
          _mm256_storeu_ps(V + (int64_t(a * 6 + b) * C + c) * nb + grp, out[b]);
      }
    }
  }
}

// Output-side geometry of 8 tiles: each lane's top-left output element, and whether all 8 tiles
// exist and lie wholly inside the P x Q output (then whole 4-wide rows move at once).
struct OutTiles {
  int64_t offs[8];
  int rows[8], cols[8];  // how many of the tile's 4 rows / columns lie inside the output
  bool full;
};
OutTiles out_tiles(const ConvShape& s, const Lanes& L) {
  const int K = s.k, P = s.p(), Q = s.q();
  OutTiles o;
  o.full = L.all_exist;
  for (int l = 0; l < 8; ++l) {
    const int p0 = L.ti[l] * 4, q0 = L.tj[l] * 4;
    o.offs[l] = int64_t(L.n[l]) * K * P * Q + int64_t(p0) * Q + q0;
    o.rows[l] = L.exists[l] ? std::min(4, P - p0) : 0;
    o.cols[l] = std::min(4, Q - q0);
    o.full = o.full && o.rows[l] == 4 && o.cols[l] == 4;
  }
  return o;
}

// y (tiles t0 .. t0 + nb) = A^T M A + bias, from M[e][k][0..nb) (kp >= K rows per e).
void output_transform(const ConvShape& s, const Tiles& g, const float* M, int kp, const float* bias,
                      int64_t t0, int nb, float* y) {
  const int K = s.k, P = s.p(), Q = s.q();
  for (int grp = 0; grp < nb; grp += 8) {
    const OutTiles o = out_tiles(s, lanes_of(g, t0 + grp));
    for (int k = 0; k < K; ++k) {
      __m256 m[6][6], t[4][6];
      for (int e = 0; e < 36; ++e)
        m[e / 6][e % 6] = _mm256_loadu_ps(M + (int64_t(e) * kp + k) * nb + grp);
      for (int b = 0; b < 6; ++b) {  // columns: t = A^T m
        __m256 col[6], out[4];
        for (int a = 0; a < 6; ++a) col[a] = m[a][b];
        at6(col, out);
        for (int i = 0; i < 4; ++i) t[i][b] = out[i];
      }
      const __m256 bv = _mm256_set1_ps(bias ? bias[k] : 0.f);
      float* yk = y + int64_t(k) * P * Q;
      __m256 out[16];                // out[4 * i + j]: output (i, j) of the 8 tiles
      for (int i = 0; i < 4; ++i) {  // rows: Y = t A
        at6(t[i], out + 4 * i);
        for (int j = 0; j < 4; ++j) out[4 * i + j] = _mm256_add_ps(out[4 * i + j], bv);
      }
      if (o.full) {  // rows (i, i + 1) of each tile in one vector: two 16-byte stores per tile
        for (int i = 0; i < 4; i += 2) {
          __m256 r[8];
          for (int j = 0; j < 4; ++j) r[j] = out[4 * i + j], r[4 + j] = out[4 * (i + 1) + j];
          transpose8(r);
          for (int l = 0; l < 8; ++l) {
            _mm_storeu_ps(yk + o.offs[l] + i * Q, _mm256_castps256_ps128(r[l]));
            _mm_storeu_ps(yk + o.offs[l] + (i + 1) * Q, _mm256_extractf128_ps(r[l], 1));
          }
        }
        continue;
      }
      alignas(32) float v[16][8];
      for (int e = 0; e < 16; ++e) _mm256_store_ps(v[e], out[e]);
      for (int l = 0; l < 8; ++l)
        for (int i = 0; i < o.rows[l]; ++i)
          for (int j = 0; j < o.cols[l]; ++j) yk[o.offs[l] + i * Q + j] = v[4 * i + j][l];
    }
  }
}

// dM[e][k][0..nb) = A dY A^T for the 4x4 output-gradient tiles of tiles t0 .. t0 + nb.
void grad_output_transform(const ConvShape& s, const Tiles& g, const float* dy, int64_t t0, int nb,
                           float* dM) {
  const int K = s.k, P = s.p(), Q = s.q();
  for (int grp = 0; grp < nb; grp += 8) {
    const OutTiles o = out_tiles(s, lanes_of(g, t0 + grp));
    for (int k = 0; k < K; ++k) {
      const float* dyk = dy + int64_t(k) * P * Q;
      __m256 d[4][4], t[6][4];
      if (o.full) {  // rows (i, i + 1) of each tile as one vector, transposed to one (i, j) each
        for (int i = 0; i < 4; i += 2) {
          __m256 r[8];
          for (int l = 0; l < 8; ++l) {
            const float* src = dyk + o.offs[l] + i * Q;
            r[l] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src)),
                                        _mm_loadu_ps(src + Q), 1);
          }
          transpose8(r);
          for (int j = 0; j < 4; ++j) d[i][j] = r[j], d[i + 1][j] = r[4 + j];
        }
      } else {
        alignas(32) float v[16][8] = {};
        for (int l = 0; l < 8; ++l)
          for (int i = 0; i < o.rows[l]; ++i)
            for (int j = 0; j < o.cols[l]; ++j) v[4 * i + j][l] = dyk[o.offs[l] + i * Q + j];
        for (int e = 0; e < 16; ++e) d[e / 4][e % 4] = _mm256_load_ps(v[e]);
      }
      for (int j = 0; j < 4; ++j) {  // columns: t = A d
        __m256 col[4], out[6];
        for (int i = 0; i < 4; ++i) col[i] = d[i][j];
        a4(col, out);
        for (int a = 0; a < 6; ++a) t[a][j] = out[a];
      }
      for (int a = 0; a < 6; ++a) {  // rows: dM = t A^T
        __m256 out[6];
        a4(t[a], out);
        for (int b = 0; b < 6; ++b)
          _mm256_storeu_ps(dM + (int64_t(a * 6 + b) * K + k) * nb + grp, out[b]);
      }
    }
  }
}

#endif

// y = conv(x, filter given as packed U) + bias, Winograd over all tiles.
void forward_transformed(const ConvShape& s, const float* x, const float* U, const float* bias,
                         float* y) {
  const Tiles g(s);
  const int C = s.c, kp = padded_k(s.k);
  const int64_t blocks = (g.total + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) {
    float* V = thread_buffer<float, WinogradScratch, 0>(size_t(36) * C * kBlock);
    float* M = thread_buffer<float, WinogradScratch, 1>(size_t(36) * kp * kBlock);
    const int64_t t0 = b * kBlock;
    input_transform(s, g, x, t0, kBlock, V);
    for (int e = 0; e < 36; ++e)
      micro::packed_gemm(U + int64_t(e) * kp * C, V + int64_t(e) * C * kBlock, kBlock, kp, C,
                         kBlock, M + int64_t(e) * kp * kBlock, kBlock, s.k, nullptr, false);
    output_transform(s, g, M, kp, bias, t0, kBlock, y);
  }
}

}  // namespace

bool applicable(const ConvShape& s) {
#if DSC_WINOGRAD_LANES == 8
  // AVX2: with few channels on either side the 36 transformed products are too small to pay for
  // the transforms (the seed's conv1, 3 -> 128: backward-data 40.0 and backward-filter 49.9 ms
  // per batch against 22.4 and 24.2 for im2col + GEMM on one Zen 3 core).
  constexpr int kMinChannels = 16;
  if (s.c < kMinChannels || s.k < kMinChannels) return false;
#endif
  return s.groups == 1 && s.r == 3 && s.s == 3 && s.stride == 1 && s.pad >= 0 && s.pad <= 2 &&
         s.p() > 0 && s.q() > 0 && s.x_numel() < (int64_t(1) << 31) &&
         s.y_numel() < (int64_t(1) << 31);
}

void forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  num_threads();  // initialises the thread settings (OpenBLAS single-threaded)
  float* U = thread_buffer<float, WinogradScratch, 2>(size_t(36) * padded_k(s.k) * s.c);
  filter_transform(w, s.k, s.c, false, U);
  forward_transformed(s, x, U, bias, y);
}

void backward_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  num_threads();
  ConvShape t = s;  // dx = conv(dy, flipped w^T), pad 2 - pad, stride 1: output H x W
  t.c = s.k, t.k = s.c, t.h = s.p(), t.w = s.q(), t.pad = 2 - s.pad;
  float* U = thread_buffer<float, WinogradScratch, 2>(size_t(36) * padded_k(t.k) * t.c);
  filter_transform(w, t.k, t.c, true, U);
  forward_transformed(t, dy, U, nullptr, dx);
}

void backward_filter(const ConvShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  const int threads = num_threads();
  const Tiles g(s);
  const int C = s.c, K = s.k, PQ = s.p() * s.q();
  constexpr int kFilterBlock = 64;  // longer blocks: the tiles are the reduction dimension
  const int64_t blocks = (g.total + kFilterBlock - 1) / kFilterBlock;
  const size_t usize = size_t(36) * K * C;
  // Per-thread partial sums (the filter slot, reused).
  float* dU = thread_buffer<float, WinogradScratch, 2>(usize * threads);
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads();  // may be fewer than asked (nested regions)
    float* mine = dU + usize * omp_get_thread_num();
    std::fill(mine, mine + usize, 0.f);
    // Static: which blocks each thread's partial sums hold (and so the result's rounding) must not
    // depend on timing; with dynamic scheduling two identical calls differed in the last bits.
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      float* V = thread_buffer<float, WinogradScratch, 0>(size_t(36) * C * kFilterBlock);
      float* dM = thread_buffer<float, WinogradScratch, 1>(size_t(36) * K * kFilterBlock);
      const int64_t t0 = b * kFilterBlock;
      input_transform(s, g, x, t0, kFilterBlock, V);
      grad_output_transform(s, g, dy, t0, kFilterBlock, dM);
      for (int e = 0; e < 36; ++e)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, C, kFilterBlock, 1.f,
                    dM + int64_t(e) * K * kFilterBlock, kFilterBlock,
                    V + int64_t(e) * C * kFilterBlock, kFilterBlock, 1.f, mine + int64_t(e) * K * C,
                    C);
    }
    // Reduce the partial sums and apply dw = G^T dU G.
#pragma omp for schedule(static)
    for (int k = 0; k < K; ++k)
      for (int c = 0; c < C; ++c) {
        float u[6][6], tmp[3][6];
        for (int e = 0; e < 36; ++e) {
          float acc = 0;
          for (int th = 0; th < team; ++th) acc += dU[usize * th + (int64_t(e) * K + k) * C + c];
          u[e / 6][e % 6] = acc;
        }
        for (int r = 0; r < 3; ++r)
          for (int b = 0; b < 6; ++b) {
            float acc = 0;
            for (int a = 0; a < 6; ++a) acc += kG[a][r] * u[a][b];
            tmp[r][b] = acc;
          }
        for (int r = 0; r < 3; ++r)
          for (int t = 0; t < 3; ++t) {
            float acc = 0;
            for (int b = 0; b < 6; ++b) acc += tmp[r][b] * kG[b][t];
            dw[((int64_t(k) * C + c) * 3 + r) * 3 + t] = acc;
          }
      }
    if (dbias) {
#pragma omp for schedule(static)
      for (int k = 0; k < K; ++k) {
        double acc = 0;
        for (int n = 0; n < s.n; ++n) {
          const float* d = dy + (int64_t(n) * K + k) * PQ;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int i = 0; i < PQ; ++i) part += d[i];
          acc += part;
        }
        dbias[k] = float(acc);
      }
    }
  }
}

#else  // neither AVX-512 nor AVX2 + FMA: the caller falls back to im2col + GEMM

bool applicable(const ConvShape&) { return false; }
void forward(const ConvShape&, const float*, const float*, const float*, float*) {}
void backward_data(const ConvShape&, const float*, const float*, float*) {}
void backward_filter(const ConvShape&, const float*, const float*, float*, float*) {}

#endif

}  // namespace dsc::cpu::winograd
