// The fused depthwise-separable convolution (see depsep_conv2d.h): per image, on one thread,
//   forward:  t = depthwise(x_n) [C, PQ] in a thread-local buffer; y_n = act(Wp t + b), and
//             with a relu_mask the bits of y_n > 0 (written by the product's epilogue).
//   backward: t again; g = dy_n * (y_n > 0), from the bits when given (1 bit read per value
//             instead of y's 32); dWp += g t^T; db += rows of g; t <- Wp^T g;
//             dx_n = depthwise^T(t); dWd += correlation of x_n with t. With few input channels
//             (the first layer) the mask and both pointwise products are one pass over dy.
// The float pointwise products run on the micro-kernel of winograd_gemm.h (AVX-512 or AVX2) when
// PQ % 32 == 0 and (AVX-512) C >= 16 (bias and ReLU in its epilogue; the AVX-512 build streams y
// past the caches), else on OpenBLAS; with fewer than 16 input channels (the first layer) and no
// micro-kernel for them, the forward is plain vectorised rows.
// Weight gradients are summed per thread, then reduced. Each part of the per-image work is a
// named phase (core/phases.h) for the step profile's sub-rows.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/cpu/depsep_conv2d.h"
#include "core/cpu/kernels.h"
#include "core/cpu/depthwise.h"
#include "core/cpu/gemm.h"
#include "core/cpu/parallel.h"
#include "core/cpu/pointwise.h"
#include "core/cpu/winograd_gemm.h"
#include "core/error.h"
#include "core/phases.h"

namespace dsc::cpu {
namespace {

struct DepSepScratch;  // thread_buffer tag: slot 0 the depthwise output, 1 the masked gradient
                       // (small C: the gradient at the depthwise output), 2 kKRows masked rows

template <class T>
bool micro_kernel(const DepSepShape& s) {
#ifdef DSC_CPU_MICRO_KERNEL
  return std::is_same_v<T, float> && (s.p() * s.q()) % 32 == 0 &&
         (DSC_CPU_MICRO_KERNEL == 256 || s.dw.c >= 16);
#else
  return false;
#endif
}

// One row of the gradient through the ReLU: g = (y > 0) ? dy : 0 (g = dy without a y; g may be
// null, then only the sum is wanted); returns the sum of g, the row's bias gradient.
template <class T>
T masked_row(const T* __restrict d, const T* __restrict y, T* __restrict g, int PQ) {
  T acc = 0;
  if (y) {
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < PQ; ++i) {
      const T v = y[i] > T(0) ? d[i] : T(0);
      g[i] = v;
      acc += v;
    }
  } else if (g) {
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < PQ; ++i) {
      g[i] = d[i];
      acc += d[i];
    }
  } else {
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < PQ; ++i) acc += d[i];
  }
  return acc;
}

// The same with the mask as bits (bit i % 8 of mask[i / 8] set where y > 0): reads 1 bit per
// value instead of y.
template <class T>
T masked_row_bits(const T* __restrict d, const uint8_t* __restrict mask, T* __restrict g, int PQ) {
  T acc = 0;
  int i = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; i + 16 <= PQ; i += 16) {
      const __m256i m0 = _mm256_and_si256(_mm256_set1_epi32(mask[i / 8]), bit);
      const __m256i m1 = _mm256_and_si256(_mm256_set1_epi32(mask[i / 8 + 1]), bit);
      const __m256 v0 = _mm256_and_ps(_mm256_loadu_ps(d + i),
                                      _mm256_castsi256_ps(_mm256_cmpeq_epi32(m0, bit)));
      const __m256 v1 = _mm256_and_ps(_mm256_loadu_ps(d + i + 8),
                                      _mm256_castsi256_ps(_mm256_cmpeq_epi32(m1, bit)));
      _mm256_storeu_ps(g + i, v0);
      _mm256_storeu_ps(g + i + 8, v1);
      a0 = _mm256_add_ps(a0, v0);
      a1 = _mm256_add_ps(a1, v1);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
    for (float l : lanes) acc += l;
  }
#endif
  for (; i < PQ; ++i) {
    const T v = (mask[i / 8] >> (i % 8)) & 1 ? d[i] : T(0);
    g[i] = v;
    acc += v;
  }
  return acc;
}

// One row of the gradient through the ReLU from whichever mask the caller has (see above).
template <class T>
T relu_row(const T* d, const T* y, const uint8_t* bits, T* g, int PQ) {
  return bits ? masked_row_bits(d, bits, g, PQ) : masked_row(d, y, g, PQ);
}

// Up to this many input channels (the first layer's 3) the backward's pointwise parts are one
// pass over dy instead of a mask pass and two GEMMs with a dimension of C: for each group of
// kKRows output channels, their masked rows g (kept in L1) give db, dWp[k][c] += g_k . t_c and
// dt_c += sum_k Wp[k][c] g_k, so dt (C x PQ) is read and written once per group. The GEMMs with
// C = 3 were bound by re-reading g.
constexpr int kFusedMaxC = 8;
constexpr int kKRows = 4;

template <class T>
void small_c_pointwise_backward(int C, int K, int PQ, const T* y, const uint8_t* bits,
                                int64_t mrow, const T* dy, const T* t, const T* wp, T* gbuf, T* dt,
                                double* db, T* dwp) {
  std::fill(dt, dt + int64_t(C) * PQ, T(0));
  for (int k0 = 0; k0 < K; k0 += kKRows) {
    const int nk = std::min(kKRows, K - k0);
    for (int j = 0; j < nk; ++j) {  // g_j = dy masked by the ReLU, and its sum
      const int64_t row = int64_t(k0 + j) * PQ;
      db[k0 + j] += relu_row(dy + row, y ? y + row : nullptr,
                             bits ? bits + (k0 + j) * mrow : nullptr, gbuf + int64_t(j) * PQ, PQ);
    }
    for (int j = nk; j < kKRows; ++j)  // a short last group: zero rows, zero weights
      std::fill(gbuf + int64_t(j) * PQ, gbuf + int64_t(j + 1) * PQ, T(0));
    const T* __restrict g0 = gbuf;
    const T* __restrict g1 = gbuf + PQ;
    const T* __restrict g2 = gbuf + 2 * int64_t(PQ);
    const T* __restrict g3 = gbuf + 3 * int64_t(PQ);
    for (int c = 0; c < C; ++c) {
      const T* __restrict tc = t + int64_t(c) * PQ;
      T* __restrict dtc = dt + int64_t(c) * PQ;
      T w[kKRows];
      for (int j = 0; j < kKRows; ++j) w[j] = j < nk ? wp[int64_t(k0 + j) * C + c] : T(0);
      T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int i = 0; i < PQ; ++i) {
        const T ti = tc[i];
        s0 += g0[i] * ti;
        s1 += g1[i] * ti;
        s2 += g2[i] * ti;
        s3 += g3[i] * ti;
        dtc[i] += w[0] * g0[i] + w[1] * g1[i] + w[2] * g2[i] + w[3] * g3[i];
      }
      const T sums[kKRows] = {s0, s1, s2, s3};
      for (int j = 0; j < nk; ++j) dwp[int64_t(k0 + j) * C + c] += sums[j];
    }
  }
}

// Row stride of the per-image buffers t and g [C or K, PQ]: rows whose stride is a multiple of
// 1 KiB map onto a few cache sets, and the product's panel copy reads one line from each of 128
// such rows (measured at 83 GFLOP/s against 89 with the rows padded by one 64-byte line, one core
// of the AVX2 machine, 128 x 128 x 1024).
int buffer_stride(int PQ) { return PQ % 256 == 0 ? PQ + 16 : PQ; }

void check(const DepSepShape& s) {
  const ConvShape& d = s.dw;
  DSC_CHECK(d.n > 0 && d.c > 0 && d.h > 0 && d.w > 0 && d.r > 0 && d.s > 0 && s.k > 0,
            "depsep_conv2d: sizes must be positive (n=", d.n, " c=", d.c, " h=", d.h, " w=", d.w,
            " r=", d.r, " s=", d.s, " k=", s.k, ")");
  DSC_CHECK(d.groups == d.c && d.k == d.c,
            "depsep_conv2d: the depthwise part needs groups = k = c");
  DSC_CHECK(d.stride > 0 && d.pad >= 0 && d.h + 2 * d.pad >= d.r && d.w + 2 * d.pad >= d.s,
            "depsep_conv2d: stride ", d.stride, ", padding ", d.pad, " and a ", d.r, "x", d.s,
            " filter do not fit a ", d.h, "x", d.w, " input");
}

}  // namespace

template <class T>
void depsep_conv2d_forward(const DepSepShape& s, const T* x, const T* wd, const T* wp, const T* b,
                           T* y, uint8_t* relu_mask) {
  check(s);
  const int C = s.dw.c, PQ = s.p() * s.q();
  const int64_t x_image = int64_t(C) * s.dw.h * s.dw.w, y_image = int64_t(s.k) * PQ;
  const int64_t mrow = s.relu_mask_row_bytes();
  if (!s.relu) relu_mask = nullptr;
  std::vector<float> u;  // Wp packed for the micro-kernel
#ifdef DSC_CPU_MICRO_KERNEL
  if (micro_kernel<T>(s)) {
    u.resize(size_t(micro::padded_rows(s.k)) * C);
    micro::pack_u(reinterpret_cast<const float*>(wp), C, 1, s.k, C, u.data());
  }
#endif
  const int ld = buffer_stride(PQ);
  for_each_image(s.dw.n, [&](int n, int) {
    phases::Timer phase("depthwise");
    T* t = thread_buffer<T, DepSepScratch, 0>(size_t(C) * ld);
    depthwise::image_forward(s.dw, x + n * x_image, wd, t, ld);
    phase.next("pointwise");
    T* yn = y + n * y_image;
    uint8_t* mn = relu_mask ? relu_mask + int64_t(n) * s.k * mrow : nullptr;
#ifdef DSC_CPU_MICRO_KERNEL
    if constexpr (std::is_same_v<T, float>) {
      if (!u.empty()) {
        micro::packed_gemm(u.data(), t, ld, micro::padded_rows(s.k), C, PQ, yn, PQ, s.k, b,
                           /*stream=*/true, s.relu, mn, mrow);
        return;
      }
    }
#endif
    pointwise_image(C, s.k, PQ, t, wp, b, s.relu, yn, ld, mn);
  });
}

template <class T>
void depsep_conv2d_backward(const DepSepShape& s, const T* x, const T* wd, const T* wp, const T* y,
                            const T* dy, T* dx, T* dwd, T* dwp, T* db, const uint8_t* relu_mask) {
  check(s);
  DSC_CHECK(!s.relu || y || relu_mask,
            "depsep_conv2d_backward: the ReLU mask needs the forward output or its bits");
  const int64_t mrow = s.relu_mask_row_bytes();
  const int C = s.dw.c, K = s.k, PQ = s.p() * s.q(), RS = s.dw.r * s.dw.s, threads = num_threads();
  const int64_t x_image = int64_t(C) * s.dw.h * s.dw.w, y_image = int64_t(K) * PQ;
  std::vector<T> dwp_part(size_t(threads) * K * C, T(0));
  std::vector<double> db_part(size_t(threads) * K, 0.0);
  std::vector<double> dwd_part(size_t(threads) * C * (RS + 1), 0.0);  // taps, then an unused bias
  const std::vector<T> flipped = depthwise::flipped_filters(s.dw, wd);
  std::vector<float> u;  // Wp^T packed for the micro-kernel: rows c, columns k
#ifdef DSC_CPU_MICRO_KERNEL
  if (micro_kernel<T>(s)) {
    u.resize(size_t(micro::padded_rows(C)) * K);
    micro::pack_u(reinterpret_cast<const float*>(wp), 1, C, C, K, u.data());
  }
#endif
  // The first layer's pass keeps t packed; the GEMM path pads the rows of t and g.
  const int ld = C <= kFusedMaxC ? PQ : buffer_stride(PQ);
  for_each_image(s.dw.n, [&](int n, int th) {
    const T* xn = x + n * x_image;
    const T* dyn = dy + n * y_image;
    const uint8_t* bits = s.relu && relu_mask ? relu_mask + int64_t(n) * K * mrow : nullptr;
    const T* yn = s.relu && !bits ? y + n * y_image : nullptr;
    phases::Timer phase("dw recompute");
    T* t = thread_buffer<T, DepSepScratch, 0>(size_t(C) * ld);
    depthwise::image_forward(s.dw, xn, wd, t, ld);
    if (C <= kFusedMaxC) {  // the first layer: one pass over dy for every pointwise part
      phase.next("mask+pointwise");
      T* dt = thread_buffer<T, DepSepScratch, 1>(size_t(C) * PQ);
      small_c_pointwise_backward(C, K, PQ, yn, bits, mrow, dyn, t, wp,
                                 thread_buffer<T, DepSepScratch, 2>(size_t(kKRows) * PQ), dt,
                                 db_part.data() + size_t(th) * K,
                                 dwp_part.data() + size_t(th) * K * C);
      phase.next("depthwise dx");
      if (dx)
        depthwise::image_backward_data(s.dw, dt, wd, flipped.data(), dx + n * x_image,
                                       /*stream=*/true);
      phase.next("depthwise dW");
      depthwise::image_backward_filter(s.dw, xn, dt, dwd_part.data() + size_t(th) * C * (RS + 1));
      return;
    }
    // g = dy masked by the ReLU, and the bias gradient, row by row in one pass.
    phase.next("relu mask+db");
    const T* g = dyn;
    int ldg = PQ;
    T* gm = s.relu ? thread_buffer<T, DepSepScratch, 1>(size_t(K) * ld) : nullptr;
    double* dbt = db_part.data() + size_t(th) * K;
    for (int k = 0; k < K; ++k) {
      const int64_t row = int64_t(k) * PQ;
      T* gk = s.relu ? gm + int64_t(k) * ld : nullptr;
      dbt[k] += relu_row(dyn + row, yn ? yn + row : nullptr, bits ? bits + k * mrow : nullptr, gk,
                         PQ);
    }
    if (s.relu) g = gm, ldg = ld;
    // dWp += g t^T, then t <- Wp^T g (the gradient at the depthwise output).
    phase.next("pointwise dW");
    gemm(false, true, K, C, PQ, T(1), g, ldg, t, ld, T(1), dwp_part.data() + size_t(th) * K * C,
         C);
    phase.next("pointwise dx");
    bool done = false;
#ifdef DSC_CPU_MICRO_KERNEL
    if constexpr (std::is_same_v<T, float>) {
      if (!u.empty()) {
        micro::packed_gemm(u.data(), g, ldg, micro::padded_rows(C), K, PQ, t, ld, C, nullptr,
                           /*stream=*/false);
        done = true;
      }
    }
#endif
    if (!done) gemm(true, false, C, PQ, K, T(1), wp, C, g, ldg, T(0), t, ld);
    phase.next("depthwise dx");
    if (dx)
      depthwise::image_backward_data(s.dw, t, wd, flipped.data(), dx + n * x_image,
                                     /*stream=*/true, ld);
    phase.next("depthwise dW");
    depthwise::image_backward_filter(s.dw, xn, t, dwd_part.data() + size_t(th) * C * (RS + 1),
                                     ld);
  });
  for (int64_t i = 0; i < int64_t(K) * C; ++i) {
    T acc = 0;
    for (int th = 0; th < threads; ++th) acc += dwp_part[size_t(th) * K * C + i];
    dwp[i] = acc;
  }
  if (db)
    for (int k = 0; k < K; ++k) {
      double acc = 0;
      for (int th = 0; th < threads; ++th) acc += db_part[size_t(th) * K + k];
      db[k] = T(acc);
    }
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < RS; ++i) {
      double acc = 0;
      for (int th = 0; th < threads; ++th) acc += dwd_part[(size_t(th) * C + c) * (RS + 1) + i];
      dwd[int64_t(c) * RS + i] = T(acc);
    }
}

#define DSC_INSTANTIATE(T)                                                                  \
  template void depsep_conv2d_forward<T>(const DepSepShape&, const T*, const T*, const T*,  \
                                         const T*, T*, uint8_t*);                           \
  template void depsep_conv2d_backward<T>(const DepSepShape&, const T*, const T*, const T*, \
                                          const T*, const T*, T*, T*, T*, T*, const uint8_t*);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {

namespace {
void check_relu_mask(const char* what, const DepSepShape& s, const Tensor* mask) {
  if (!mask) return;
  const Shape want = {s.dw.n, s.k, s.relu_mask_row_bytes()};
  DSC_CHECK(s.relu && mask->dtype() == DType::U8 && mask->shape() == want, what,
            ": relu_mask must be u8 ", shape_str(want), " with relu, got ", mask->str());
}
}  // namespace

void depsep_conv2d_forward(const DepSepShape& s, const Tensor& x, const Tensor& wd, const Tensor& wp,
                    const Tensor* b, Tensor& y, Tensor* relu_mask) {
  check_relu_mask("depsep_conv2d_forward", s, relu_mask);
  Tensor xw = widen(x), wdw = widen(wd), wpw = widen(wp), bw = b ? widen(*b) : Tensor();
  Tensor yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::depsep_conv2d_forward<T>(s, ptr<T>(xw), ptr<T>(wdw), ptr<T>(wpw), b ? ptr<T>(bw) : nullptr,
                                  ptr<T>(yo), relu_mask ? ptr<uint8_t>(*relu_mask) : nullptr);
  });
  narrow_into(yo, y);
}

void depsep_conv2d_backward(const DepSepShape& s, const Tensor& x, const Tensor& wd, const Tensor& wp,
                    const Tensor& y, const Tensor* relu_mask, const Tensor& dy, Tensor* dx,
                    Tensor& dwd, Tensor& dwp, Tensor* db) {
  check_relu_mask("depsep_conv2d_backward", s, relu_mask);
  Tensor xw = widen(x), wdw = widen(wd), wpw = widen(wp), dyw = widen(dy);
  Tensor yw = relu_mask ? Tensor() : widen(y);  // the mask's bits replace y
  Tensor dxo = dx ? scratch_for(*dx) : Tensor(), dwdo = scratch_for(dwd), dwpo = scratch_for(dwp);
  Tensor dbo = db ? scratch_for(*db) : Tensor();
  by_dtype(dwdo.dtype(), [&]<class T>() {
    cpu::depsep_conv2d_backward<T>(s, ptr<T>(xw), ptr<T>(wdw), ptr<T>(wpw),
                                   yw.defined() ? ptr<T>(yw) : nullptr, ptr<T>(dyw),
                                   dx ? ptr<T>(dxo) : nullptr, ptr<T>(dwdo), ptr<T>(dwpo),
                                   db ? ptr<T>(dbo) : nullptr,
                                   relu_mask ? ptr<uint8_t>(*relu_mask) : nullptr);
  });
  if (dx) narrow_into(dxo, *dx);
  narrow_into(dwdo, dwd);
  narrow_into(dwpo, dwp);
  if (db) narrow_into(dbo, *db);
}

}  // namespace dsc::cpu
