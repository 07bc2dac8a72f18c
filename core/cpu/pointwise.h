// One image's 1x1 product on the calling thread, shared by the convolution and fused DepSep
// kernels: y [K, PQ] = act(W x + b) with W [K, C] row-major, x [C, PQ] (an image or an im2col
// matrix; its rows ldx >= PQ apart, 0 meaning PQ), b [K] or null, act = ReLU if relu (and with
// relu_mask, [K][(PQ + 7) / 8], the rows' ReLU masks as bits, see write_mask_bits). Plain
// vectorised rows when C < 16 (a GEMM call costs more than it saves there), else OpenBLAS
// followed by one pass for bias and ReLU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/cpu/gemm.h"

namespace dsc::cpu {

// The ReLU mask of one output row y [PQ] as bits: bit i % 8 of mask[i / 8] set where y > 0.
template <class T>
void write_mask_bits(const T* __restrict y, int PQ, uint8_t* __restrict mask) {
  int i0 = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    for (; i0 + 8 <= PQ; i0 += 8) {
      const __m256 v = _mm256_loadu_ps(y + i0);
      mask[i0 / 8] = uint8_t(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)));
    }
#endif
  for (; i0 < PQ; i0 += 8) {
    uint8_t b = 0;
    for (int i = i0; i < std::min(i0 + 8, PQ); ++i) b |= uint8_t(y[i] > T(0)) << (i - i0);
    mask[i0 / 8] = b;
  }
}

template <class T>
void pointwise_image(int C, int K, int PQ, const T* x, const T* w, const T* b, bool relu, T* y,
                     int64_t ldx = 0, uint8_t* relu_mask = nullptr) {
  if (ldx <= 0) ldx = PQ;
  const int64_t mrow = (PQ + 7) / 8;
  if (C < 16) {
    for (int k = 0; k < K; ++k) {
      T* __restrict row = y + int64_t(k) * PQ;
      const T bk = b ? b[k] : T(0);
      for (int i = 0; i < PQ; ++i) row[i] = bk;
      for (int c = 0; c < C; ++c) {
        const T wk = w[int64_t(k) * C + c];
        const T* __restrict xc = x + int64_t(c) * ldx;
#pragma omp simd
        for (int i = 0; i < PQ; ++i) row[i] += wk * xc[i];
      }
      if (relu) {
#pragma omp simd
        for (int i = 0; i < PQ; ++i) row[i] = row[i] > T(0) ? row[i] : T(0);
        if (relu_mask) write_mask_bits(row, PQ, relu_mask + k * mrow);
      }
    }
    return;
  }
  gemm(false, false, K, PQ, C, T(1), w, C, x, ldx, T(0), y, PQ);
  if (!b && !relu) return;
  for (int k = 0; k < K; ++k) {
    T* __restrict row = y + int64_t(k) * PQ;
    const T bk = b ? b[k] : T(0);
    if (relu) {
#pragma omp simd
      for (int i = 0; i < PQ; ++i) row[i] = row[i] + bk > T(0) ? row[i] + bk : T(0);
      if (relu_mask) write_mask_bits(row, PQ, relu_mask + k * mrow);
    } else {
#pragma omp simd
      for (int i = 0; i < PQ; ++i) row[i] += bk;
    }
  }
}

}  // namespace dsc::cpu
