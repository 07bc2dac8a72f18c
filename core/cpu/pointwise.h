// One image's 1x1 product on the calling thread, shared by the convolution and fused DepSep
// kernels: y [K, PQ] = act(W x + b) with W [K, C] row-major, x [C, PQ] (an image or an im2col
// matrix; its rows ldx >= PQ apart, 0 meaning PQ), b [K] or null, act = ReLU if relu. Plain
// vectorised rows when C < 16 (a GEMM call costs more than it saves there), else OpenBLAS
// followed by one pass for bias and ReLU.
#pragma once

#include <cstdint>

#include "core/cpu/gemm.h"

namespace dsc::cpu {

template <class T>
void pointwise_image(int C, int K, int PQ, const T* x, const T* w, const T* b, bool relu, T* y,
                     int64_t ldx = 0) {
  if (ldx <= 0) ldx = PQ;
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
      if (relu)
#pragma omp simd
        for (int i = 0; i < PQ; ++i) row[i] = row[i] > T(0) ? row[i] : T(0);
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
    } else {
#pragma omp simd
      for (int i = 0; i < PQ; ++i) row[i] += bk;
    }
  }
}

}  // namespace dsc::cpu
