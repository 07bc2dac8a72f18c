// The matrix-product micro-kernel shared by the Winograd path (one product per transformed
// position) and the float pointwise 1x1 path: out [k_valid x n] = U [kp x C] * V [C x n] (+ bias).
// Two builds of it: AVX-512 (register block 8 rows x 32 columns = 16 accumulators; per c two
// vector loads of V and eight broadcasts of U) and AVX2 + FMA (6 rows x 16 columns = 12
// accumulators, the most that fit 16 registers with the two loads and the broadcast; V's panel
// copied to a contiguous buffer first). DSC_CPU_MICRO_KERNEL is defined (512 or 256) when either
// is built; callers guard on it and otherwise use OpenBLAS.
//
// Layouts: U packed as [kp / G][C][G] by pack_u (G = kRowGroup, kp a multiple of G, rows k >= the
// real count zero-filled); V row-major with row stride ldv; out row-major with row stride ldo;
// n % 32 == 0. With stream = true the AVX-512 build writes aligned rows with non-temporal stores
// (the AVX2 build does not: slower there); with relu = true, max(0, .) is applied after the bias,
// and with a relu_mask too, bit i % 8 of relu_mask[r * ldm + i / 8] is set where out[r][i] > 0.
// The AVX-512 build also has the 16x16 register transpose the Winograd transforms use. Tested
// through conv2d_* and depsep_conv2d_* in tests/kernels/test_conv2d_cpu.cpp and
// test_depsep_conv2d_cpu.cpp.
#pragma once

#if defined(__AVX512F__)
#define DSC_CPU_MICRO_KERNEL 512
#elif defined(__AVX2__) && defined(__FMA__)
#define DSC_CPU_MICRO_KERNEL 256
#endif

#ifdef DSC_CPU_MICRO_KERNEL
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace dsc::cpu::micro {

// The instruction set the micro-kernel was built for, as kernel listings name it.
inline const char* isa() { return DSC_CPU_MICRO_KERNEL == 512 ? "AVX-512" : "AVX2"; }

// Rows of U per register block: AVX-512 8, AVX2 6 (12 accumulators + 2 loads + 1 broadcast of
// the 16 registers).
constexpr int kRowGroup = DSC_CPU_MICRO_KERNEL == 512 ? 8 : 6;

inline int padded_rows(int k) { return (k + kRowGroup - 1) / kRowGroup * kRowGroup; }

// dst [kp / G][C][G] (G = kRowGroup) = src rows (k, c) -> src[k * row_stride + c * col_stride],
// zero rows past k_n.
inline void pack_u(const float* src, int64_t row_stride, int64_t col_stride, int k_n, int C,
                   float* dst) {
  const int kp = padded_rows(k_n), G = kRowGroup;
  for (int k = 0; k < kp; ++k)
    for (int c = 0; c < C; ++c)
      dst[(int64_t(k / G) * C + c) * G + k % G] =
          k < k_n ? src[k * row_stride + c * col_stride] : 0.f;
}

}  // namespace dsc::cpu::micro
#endif

#if DSC_CPU_MICRO_KERNEL == 256
#include <vector>

namespace dsc::cpu::micro {

// Rows [0, kR) of one row group: out [r][0, 16) (rows ldo apart) = bias[r] + sum_c u[c][r] *
// panel[c][0, 16), with max(0, .) if relu. u is the group of U ([C][kRowGroup]); rows of the group
// past kR (padding) are not computed. Forced inline with constant trip counts so that the
// accumulators stay in registers.
template <int kR>
__attribute__((always_inline)) inline void row_block(const float* __restrict u,
                                                     const float* __restrict panel, int C,
                                                     const float* bias, bool relu,
                                                     float* __restrict out, int64_t ldo,
                                                     uint8_t* __restrict mask, int64_t ldm) {
  __m256 acc[kR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) acc[r][0] = acc[r][1] = _mm256_set1_ps(bias ? bias[r] : 0.f);
  for (int c = 0; c < C; ++c) {
    const __m256 v0 = _mm256_load_ps(panel + c * 16);
    const __m256 v1 = _mm256_load_ps(panel + c * 16 + 8);
    const float* uc = u + c * kRowGroup;
#pragma GCC unroll 6
    for (int r = 0; r < kR; ++r) {
      const __m256 ur = _mm256_broadcast_ss(uc + r);
      acc[r][0] = _mm256_fmadd_ps(ur, v0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ur, v1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kR; ++r) {
    if (relu) {
      acc[r][0] = _mm256_max_ps(acc[r][0], _mm256_setzero_ps());
      acc[r][1] = _mm256_max_ps(acc[r][1], _mm256_setzero_ps());
      if (mask) {  // 16 columns: two bytes of the row's mask, one store
        const __m256 zero = _mm256_setzero_ps();
        const uint16_t bits = uint16_t(
            _mm256_movemask_ps(_mm256_cmp_ps(acc[r][0], zero, _CMP_GT_OQ)) |
            _mm256_movemask_ps(_mm256_cmp_ps(acc[r][1], zero, _CMP_GT_OQ)) << 8);
        std::memcpy(mask + r * ldm, &bits, 2);
      }
    }
    _mm256_storeu_ps(out + r * ldo, acc[r][0]);
    _mm256_storeu_ps(out + r * ldo + 8, acc[r][1]);
  }
}

inline void packed_gemm(const float* __restrict U, const float* __restrict V, int64_t ldv, int kp,
                        int C, int n, float* __restrict out, int64_t ldo, int k_valid,
                        const float* bias, bool stream, bool relu = false,
                        uint8_t* relu_mask = nullptr, int64_t ldm = 0) {
  // `stream` is not honoured here: on the AVX2 machine this was measured on (an AMD EPYC Zen 3
  // VM) non-temporal stores wrote 64 MB of output at 6.6 GB/s against 15.2 GB/s for plain ones.
  (void)stream;
  // V's 16-column panel copied to [C][16] first: rows of V are often a multiple of 4 KiB apart,
  // which maps them all to the same few L1 sets, so read in place they would not stay in L1 for
  // the K / 4 passes over the panel.
  thread_local std::vector<float> panel_buffer;
  if (panel_buffer.size() < size_t(C) * 16 + 8) panel_buffer.resize(size_t(C) * 16 + 8);
  float* panel = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(panel_buffer.data()) + 31) & ~uintptr_t(31));
  const int rows = k_valid < kp ? k_valid : kp;
  for (int j = 0; j < n; j += 16) {
    for (int c = 0; c < C; ++c) {
      _mm256_store_ps(panel + c * 16, _mm256_loadu_ps(V + c * ldv + j));
      _mm256_store_ps(panel + c * 16 + 8, _mm256_loadu_ps(V + c * ldv + j + 8));
    }
    // One row group of U at a time; a short last group computes only its real rows (K = 128 in
    // groups of 6 would otherwise spend 3% of the multiply-adds on padding).
    for (int r0 = 0; r0 < rows; r0 += kRowGroup) {
      const float* u = U + int64_t(r0) * C;
      const float* b = bias ? bias + r0 : nullptr;
      float* o = out + int64_t(r0) * ldo + j;
      uint8_t* m = relu_mask ? relu_mask + int64_t(r0) * ldm + j / 8 : nullptr;
      switch (rows - r0 < kRowGroup ? rows - r0 : kRowGroup) {
        case 1: row_block<1>(u, panel, C, b, relu, o, ldo, m, ldm); break;
        case 2: row_block<2>(u, panel, C, b, relu, o, ldo, m, ldm); break;
        case 3: row_block<3>(u, panel, C, b, relu, o, ldo, m, ldm); break;
        case 4: row_block<4>(u, panel, C, b, relu, o, ldo, m, ldm); break;
        case 5: row_block<5>(u, panel, C, b, relu, o, ldo, m, ldm); break;
        default: row_block<6>(u, panel, C, b, relu, o, ldo, m, ldm); break;
      }
    }
  }
}

}  // namespace dsc::cpu::micro
#endif

#if DSC_CPU_MICRO_KERNEL == 512

// GCC 12 reports its own AVX-512 intrinsic headers (the _mm512_undefined_* placeholders) as
// "may be used uninitialized" once inlined here; a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dsc::cpu::micro {

inline void packed_gemm(const float* __restrict U, const float* __restrict V, int64_t ldv, int kp,
                        int C, int n, float* __restrict out, int64_t ldo, int k_valid,
                        const float* bias, bool stream, bool relu = false,
                        uint8_t* relu_mask = nullptr, int64_t ldm = 0) {
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
        if (relu && relu_mask) {  // 32 columns: four bytes of the row's mask
          const __mmask16 m0 = _mm512_cmp_ps_mask(acc[r][0], _mm512_setzero_ps(), _CMP_GT_OQ);
          const __mmask16 m1 = _mm512_cmp_ps_mask(acc[r][1], _mm512_setzero_ps(), _CMP_GT_OQ);
          uint8_t* m = relu_mask + int64_t(kb * 8 + r) * ldm + j / 8;
          m[0] = uint8_t(m0), m[1] = uint8_t(m0 >> 8), m[2] = uint8_t(m1), m[3] = uint8_t(m1 >> 8);
        }
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
