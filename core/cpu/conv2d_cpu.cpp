// 2-D convolution on the CPU: the public entry points of conv2d.h and their dispatch.
//
// Layouts: x [N, C, H, W], w [K, C/groups, R, S], bias [K], y [N, K, P, Q] (see conv2d.h).
// Paths: depthwise -> depthwise_cpu.cpp (direct loops); float 3x3 stride 1 -> winograd_cpu.cpp
// (where winograd::applicable); everything else -> im2col + GEMM per image, in parallel over
// images (col [C*R*S, P*Q]; y_n = W * col; col = W^T * dy_n then col2im; dW = sum_n dy_n * col^T).
// Pointwise 1x1 (stride 1, pad 0) skips im2col: the image [C, H*W] is the column matrix; in float
// with H*W % 32 == 0 its forward and backward-data run on the micro-kernel of winograd_gemm.h
// (AVX-512 or AVX2; bias fused, AVX-512 streams the outputs); forward products with C*R*S < 16
// are plain vectorised rows (pointwise.h).
// Tested against naive nested loops in tests/kernels/test_conv2d_cpu.cpp.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/cpu/conv2d.h"
#include "core/cpu/kernels.h"
#include "core/cpu/depthwise.h"
#include "core/cpu/gemm.h"
#include "core/cpu/parallel.h"
#include "core/cpu/pointwise.h"
#include "core/cpu/winograd.h"
#include "core/cpu/winograd_gemm.h"
#include "core/error.h"

namespace dsc::cpu {
namespace {

struct ConvScratch;  // thread_buffer tag

// col[(c*R + r)*S + t][p*Q + q] = x[c][p*stride - pad + r][q*stride - pad + t] (0 outside).
template <class T>
void im2col(const ConvShape& s, const T* x, T* col) {
  const int P = s.p(), Q = s.q();
  for (int c = 0; c < s.c; ++c)
    for (int r = 0; r < s.r; ++r)
      for (int t = 0; t < s.s; ++t) {
        T* row = col + ((int64_t(c) * s.r + r) * s.s + t) * P * Q;
        const T* xc = x + int64_t(c) * s.h * s.w;
        for (int p = 0; p < P; ++p) {
          const int h = p * s.stride - s.pad + r;
          T* out = row + p * Q;
          if (h < 0 || h >= s.h) {
            std::fill(out, out + Q, T(0));
            continue;
          }
          for (int q = 0; q < Q; ++q) {
            const int w = q * s.stride - s.pad + t;
            out[q] = (w >= 0 && w < s.w) ? xc[h * s.w + w] : T(0);
          }
        }
      }
}

// The adjoint of im2col: dx (overwritten) = sum of col entries landing on each pixel.
template <class T>
void col2im(const ConvShape& s, const T* col, T* dx) {
  const int P = s.p(), Q = s.q();
  std::fill(dx, dx + int64_t(s.c) * s.h * s.w, T(0));
  for (int c = 0; c < s.c; ++c)
    for (int r = 0; r < s.r; ++r)
      for (int t = 0; t < s.s; ++t) {
        const T* row = col + ((int64_t(c) * s.r + r) * s.s + t) * P * Q;
        T* dxc = dx + int64_t(c) * s.h * s.w;
        for (int p = 0; p < P; ++p) {
          const int h = p * s.stride - s.pad + r;
          if (h < 0 || h >= s.h) continue;
          for (int q = 0; q < Q; ++q) {
            const int w = q * s.stride - s.pad + t;
            if (w >= 0 && w < s.w) dxc[h * s.w + w] += row[p * Q + q];
          }
        }
      }
}

// 1x1, stride 1, pad 0: the image [C, H*W] is already the im2col matrix.
template <class T>
bool is_pointwise(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.stride == 1 && s.pad == 0;
}

#ifdef DSC_CPU_MICRO_KERNEL
// Float pointwise (1x1, stride 1, pad 0, H*W % 32 == 0) on the packed micro-kernel, one image per
// task, bias fused, outputs streamed: forward y_n = W x_n, backward-data dx_n = W^T dy_n.
bool pointwise_fast(const ConvShape& s) {
  return is_pointwise<float>(s) && (s.h * s.w) % 32 == 0 && s.c >= 16;
}

void pointwise_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                       float* y) {
  const int HW = s.h * s.w, kp = micro::padded_rows(s.k);
  float* u = thread_buffer<float, ConvScratch>(size_t(kp) * s.c);
  micro::pack_u(w, s.c, 1, s.k, s.c, u);
  for_each_image(s.n, [&](int n, int) {
    micro::packed_gemm(u, x + int64_t(n) * s.c * HW, HW, kp, s.c, HW, y + int64_t(n) * s.k * HW, HW,
                       s.k, bias, true);
  });
}

void pointwise_backward_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  const int HW = s.h * s.w, cp = micro::padded_rows(s.c);
  float* u = thread_buffer<float, ConvScratch>(size_t(cp) * s.k);
  micro::pack_u(w, 1, s.c, s.c, s.k, u);  // W^T: rows c, columns k
  for_each_image(s.n, [&](int n, int) {
    micro::packed_gemm(u, dy + int64_t(n) * s.k * HW, HW, cp, s.k, HW, dx + int64_t(n) * s.c * HW,
                       HW, s.c, nullptr, true);
  });
}
#endif

template <class T>
void gemm_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const bool direct = is_pointwise<T>(s);
  for_each_image(s.n, [&](int n, int) {
    const T* xn = x + int64_t(n) * s.c * s.h * s.w;
    const T* col = xn;
    if (!direct) {
      T* buf = thread_buffer<T, ConvScratch>(size_t(CRS) * PQ);
      im2col(s, xn, buf);
      col = buf;
    }
    pointwise_image(CRS, s.k, PQ, col, w, bias, /*relu=*/false, y + int64_t(n) * s.k * PQ);
  });
}

template <class T>
void gemm_backward_data(const ConvShape& s, const T* dy, const T* w, T* dx) {
  const int PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const bool direct = is_pointwise<T>(s);
  for_each_image(s.n, [&](int n, int) {
    const T* dyn = dy + int64_t(n) * s.k * PQ;
    T* dxn = dx + int64_t(n) * s.c * s.h * s.w;
    if (direct) {
      gemm(true, false, CRS, PQ, s.k, T(1), w, CRS, dyn, PQ, T(0), dxn, PQ);
      return;
    }
    T* col = thread_buffer<T, ConvScratch>(size_t(CRS) * PQ);
    gemm(true, false, CRS, PQ, s.k, T(1), w, CRS, dyn, PQ, T(0), col, PQ);
    col2im(s, col, dxn);
  });
}

// dW = sum_n dy_n * col_n^T: per-thread partial sums (beta = 1 over a thread's images), reduced.
template <class T>
void gemm_backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  const int PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const bool direct = is_pointwise<T>(s);
  const int threads = num_threads();
  const size_t wsize = size_t(s.k) * CRS;
  std::vector<T> partial(wsize * threads, T(0));
  std::vector<double> bias_partial(size_t(s.k) * threads, 0.0);
  for_each_image(s.n, [&](int n, int th) {
    const T* xn = x + int64_t(n) * s.c * s.h * s.w;
    const T* col = xn;
    if (!direct) {
      T* buf = thread_buffer<T, ConvScratch>(size_t(CRS) * PQ);
      im2col(s, xn, buf);
      col = buf;
    }
    const T* dyn = dy + int64_t(n) * s.k * PQ;
    gemm(false, true, s.k, CRS, PQ, T(1), dyn, PQ, col, PQ, T(1), partial.data() + wsize * th, CRS);
    if (dbias)
      for (int k = 0; k < s.k; ++k) {
        const T* d = dyn + int64_t(k) * PQ;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < PQ; ++i) acc += d[i];
        bias_partial[size_t(th) * s.k + k] += acc;
      }
  });
  for (size_t i = 0; i < wsize; ++i) {
    T acc = partial[i];
    for (int th = 1; th < threads; ++th) acc += partial[wsize * th + i];
    dw[i] = acc;
  }
  if (dbias)
    for (int k = 0; k < s.k; ++k) {
      double acc = 0;
      for (int th = 0; th < threads; ++th) acc += bias_partial[size_t(th) * s.k + k];
      dbias[k] = T(acc);
    }
}

void check_shape(const ConvShape& s) {
  DSC_CHECK(s.n > 0 && s.c > 0 && s.h > 0 && s.w > 0 && s.k > 0 && s.r > 0 && s.s > 0,
            "conv2d: sizes must be positive (n=", s.n, " c=", s.c, " h=", s.h, " w=", s.w,
            " k=", s.k, " r=", s.r, " s=", s.s, ")");
  DSC_CHECK(s.stride > 0 && s.pad >= 0,
            "conv2d: need stride >= 1 and pad >= 0, got stride=", s.stride, " pad=", s.pad);
  DSC_CHECK(s.groups == 1 || (s.groups == s.c && s.k == s.c),
            "conv2d: groups must be 1 or C == K (depthwise), got groups=", s.groups, " c=", s.c,
            " k=", s.k);
  DSC_CHECK(s.h + 2 * s.pad >= s.r && s.w + 2 * s.pad >= s.s, "conv2d: the ", s.r, "x", s.s,
            " filter is larger than the padded ", s.h, "x", s.w, " input (pad ", s.pad, ")");
}

}  // namespace

template <class T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s);
  if (s.depthwise()) return depthwise::forward(s, x, w, bias, y);
  if constexpr (std::is_same_v<T, float>) {
    if (winograd::applicable(s)) return winograd::forward(s, x, w, bias, y);
#ifdef DSC_CPU_MICRO_KERNEL
    if (pointwise_fast(s)) return pointwise_forward(s, x, w, bias, y);
#endif
  }
  gemm_forward(s, x, w, bias, y);
}

template <class T>
void conv2d_backward_data(const ConvShape& s, const T* dy, const T* w, T* dx) {
  check_shape(s);
  if (s.depthwise()) return depthwise::backward_data(s, dy, w, dx);
  if constexpr (std::is_same_v<T, float>) {
    if (winograd::applicable(s)) return winograd::backward_data(s, dy, w, dx);
#ifdef DSC_CPU_MICRO_KERNEL
    if (pointwise_fast(s)) return pointwise_backward_data(s, dy, w, dx);
#endif
  }
  gemm_backward_data(s, dy, w, dx);
}

template <class T>
void conv2d_backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  check_shape(s);
  if (s.depthwise()) return depthwise::backward_filter(s, x, dy, dw, dbias);
  if constexpr (std::is_same_v<T, float>) {
    if (winograd::applicable(s)) return winograd::backward_filter(s, x, dy, dw, dbias);
  }
  gemm_backward_filter(s, x, dy, dw, dbias);
}

#define DSC_INSTANTIATE(T)                                                             \
  template void conv2d_forward<T>(const ConvShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_data<T>(const ConvShape&, const T*, const T*, T*);     \
  template void conv2d_backward_filter<T>(const ConvShape&, const T*, const T*, T*, T*);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {

void conv2d_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) {
  Tensor xw = widen(x), ww = widen(w), bw = b ? widen(*b) : Tensor(), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::conv2d_forward<T>(s, ptr<T>(xw), ptr<T>(ww), b ? ptr<T>(bw) : nullptr, ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void conv2d_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  Tensor dyw = widen(dy), ww = widen(w), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::conv2d_backward_data<T>(s, ptr<T>(dyw), ptr<T>(ww), ptr<T>(o));
  });
  narrow_into(o, dx);
}

void conv2d_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                         Tensor* db) {
  Tensor xw = widen(x), dyw = widen(dy), o = scratch_for(dw);
  Tensor dbo = db ? scratch_for(*db) : Tensor();
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::conv2d_backward_filter<T>(s, ptr<T>(xw), ptr<T>(dyw), ptr<T>(o),
                                   db ? ptr<T>(dbo) : nullptr);
  });
  narrow_into(o, dw);
  if (db) narrow_into(dbo, *db);
}

}  // namespace dsc::cpu
