// The AVX-512 matrix-product micro-kernel shared by the Winograd path (one product per transformed
// position) and the float pointwise 1x1 path: out [k_valid x n] = U [kp x C] * V [C x n] (+ bias).
//
// Layouts: U packed as [kp / 8][C][8] (kp a multiple of 8, rows k >= the real count zero-filled);
// V row-major with row stride ldv; out row-major with row stride ldo; n % 32 == 0. Register
// block: 8 rows x 32 columns = 16 accumulators; per c two vector loads of V and eight broadcasts
// of U. With stream = true, 64-byte-aligned rows are written with non-temporal stores; with
// relu = true, max(0, .) is applied after the bias. Also the
// 16x16 register transpose the Winograd transforms use. Tested through conv2d_* in
// tests/kernels/test_conv2d_cpu.cpp.
#pragma once

#ifdef __AVX512F__
#include <immintrin.h>

// GCC 12 reports its own AVX-512 intrinsic headers (the _mm512_undefined_* placeholders) as
// "may be used uninitialized" once inlined here; a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstdint>

namespace dsc::cpu::micro {

inline int padded_rows(int k) { return (k + 7) / 8 * 8; }

// dst [kp / 8][C][8] = src rows (k, c) -> src[k * row_stride + c * col_stride], zero rows past k_n.
inline void pack_u(const float* src, int64_t row_stride, int64_t col_stride, int k_n, int C,
                   float* dst) {
  const int kp = padded_rows(k_n);
  for (int k = 0; k < kp; ++k)
    for (int c = 0; c < C; ++c)
      dst[(int64_t(k / 8) * C + c) * 8 + k % 8] =
          k < k_n ? src[k * row_stride + c * col_stride] : 0.f;
}

inline void packed_gemm(const float* __restrict U, const float* __restrict V, int64_t ldv, int kp,
                        int C, int n, float* __restrict out, int64_t ldo, int k_valid,
                        const float* bias, bool stream, bool relu = false) {
  const bool aligned = stream && (reinterpret_cast<uintptr_t>(out) & 63) == 0 && (ldo & 15) == 0;
  for (int j = 0; j < n; j += 32) {  // column panel outer: V's panel stays in L1 across kb
    if (j + 32 < n)  // the next panel, row by row (V rows may be far apart: no HW prefetch)
      for (int c = 0; c < C; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(V + c * ldv + j + 32), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(V + c * ldv + j + 48), _MM_HINT_T1);
      }
    for (int kb = 0; kb < kp / 8; ++kb) {
      const float* u = U + int64_t(kb) * C * 8;
      const int rows = k_valid - kb * 8 < 8 ? k_valid - kb * 8 : 8;
      __m512 acc[8][2];
      for (int r = 0; r < 8; ++r) {
        const float b = (bias && r < rows) ? bias[kb * 8 + r] : 0.f;
        acc[r][0] = acc[r][1] = _mm512_set1_ps(b);
      }
      const float* v = V + j;
      for (int c = 0; c < C; ++c) {
        const __m512 v0 = _mm512_loadu_ps(v + c * ldv);
        const __m512 v1 = _mm512_loadu_ps(v + c * ldv + 16);
        const float* uc = u + c * 8;
        for (int r = 0; r < 8; ++r) {
          const __m512 ur = _mm512_set1_ps(uc[r]);
          acc[r][0] = _mm512_fmadd_ps(ur, v0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(ur, v1, acc[r][1]);
        }
      }
      if (relu)
        for (int r = 0; r < 8; ++r) {
          acc[r][0] = _mm512_max_ps(acc[r][0], _mm512_setzero_ps());
          acc[r][1] = _mm512_max_ps(acc[r][1], _mm512_setzero_ps());
        }
      for (int r = 0; r < rows; ++r) {
        float* o = out + int64_t(kb * 8 + r) * ldo + j;
        if (aligned) {
          _mm512_stream_ps(o, acc[r][0]);
          _mm512_stream_ps(o + 16, acc[r][1]);
        } else {
          _mm512_storeu_ps(o, acc[r][0]);
          _mm512_storeu_ps(o + 16, acc[r][1]);
        }
      }
    }
  }
  if (aligned) _mm_sfence();
}

// In-register transpose of a 16x16 float matrix held as 16 row vectors.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

}  // namespace dsc::cpu::micro

#pragma GCC diagnostic pop
#endif
