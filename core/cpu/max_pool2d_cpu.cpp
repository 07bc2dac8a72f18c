// Max pooling, CPU (see max_pool2d.h). One (n, c) plane per loop iteration, planes split over
// threads. Float 4x4 windows with stride 4 and W % 8 == 0 (the seed models' pool) take an AVX2
// path: a vector holds one row of two windows; forward takes the maximum down the rows, then
// within each group of 4 lanes; backward finds each window's first maximum from the compare masks
// of its 16 elements (the lowest set bit in row-major order) and writes the plane once. Any NaN
// in a row of windows sends that row to the scalar loop, so the results equal the scalar loop's
// (up to the sign of a zero maximum: either zero may be returned where the window holds both).
#include <cstdint>
#include <cstring>
#include <type_traits>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "core/cpu/max_pool2d.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {
namespace {

template <class T>
void forward_row(const T* xp, int w, int k, int st, int q, int i, T* yr) {
  for (int j = 0; j < q; ++j) {
    T best = xp[(i * st) * w + j * st];
    for (int a = 0; a < k; ++a)
      for (int b = 0; b < k; ++b) {
        const T v = xp[(i * st + a) * w + j * st + b];
        if (v > best) best = v;
      }
    yr[j] = best;
  }
}

// dx rows [i * st, i * st + k) must be zero for the windows of output row i.
template <class T>
void backward_row(const T* xp, const T* yr, const T* dyr, int w, int k, int st, int q, int i,
                  T* dxp) {
  for (int j = 0; j < q; ++j) {
    bool done = false;
    for (int a = 0; a < k && !done; ++a)
      for (int b = 0; b < k && !done; ++b) {
        const int idx = (i * st + a) * w + j * st + b;
        if (xp[idx] == yr[j]) {
          dxp[idx] += dyr[j];
          done = true;
        }
      }
  }
}

#ifdef __AVX2__
bool fast_path(int k, int st, int w) { return k == 4 && st == 4 && w % 8 == 0; }

// Output row i of a plane, 4x4 windows, stride 4: false (nothing written) if a NaN is present.
bool forward_row4(const float* xp, int w, int i, float* yr) {
  const float* r0 = xp + int64_t(4 * i) * w;
  __m256 nan = _mm256_setzero_ps();
  for (int c = 0; c < w; c += 8) {
    const __m256 a = _mm256_loadu_ps(r0 + c), b = _mm256_loadu_ps(r0 + w + c);
    const __m256 d = _mm256_loadu_ps(r0 + 2 * w + c), e = _mm256_loadu_ps(r0 + 3 * w + c);
    nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q),
                                         _mm256_cmp_ps(d, e, _CMP_UNORD_Q)));
    __m256 m = _mm256_max_ps(_mm256_max_ps(a, b), _mm256_max_ps(d, e));
    m = _mm256_max_ps(m, _mm256_permute_ps(m, 0xB1));  // lanes 0<->1, 2<->3
    m = _mm256_max_ps(m, _mm256_permute_ps(m, 0x4E));  // lanes 0,1 <-> 2,3
    yr[c / 4] = _mm256_cvtss_f32(m);
    yr[c / 4 + 1] = _mm_cvtss_f32(_mm256_extractf128_ps(m, 1));
  }
  return _mm256_movemask_ps(nan) == 0;
}

// Writes dx rows 4i .. 4i+3 whole: zero but at each window's first maximum (x == y).
void backward_row4(const float* xp, const float* yr, const float* dyr, int w, int i, float* dxp) {
  const int64_t r0 = int64_t(4 * i) * w;
  const __m256 zero = _mm256_setzero_ps();
  for (int c = 0; c < w; c += 8) {
    const __m256 yb = _mm256_set_m128(_mm_set1_ps(yr[c / 4 + 1]), _mm_set1_ps(yr[c / 4]));
    unsigned m[4];
    for (int a = 0; a < 4; ++a) {
      m[a] = unsigned(_mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_loadu_ps(xp + r0 + a * w + c), yb, _CMP_EQ_OQ)));
      _mm256_storeu_ps(dxp + r0 + a * w + c, zero);
    }
    for (int half = 0; half < 2; ++half) {  // the two windows of this vector
      const int sh = 4 * half;
      const unsigned bits = ((m[0] >> sh) & 0xF) | (((m[1] >> sh) & 0xF) << 4) |
                            (((m[2] >> sh) & 0xF) << 8) | (((m[3] >> sh) & 0xF) << 12);
      if (bits == 0) continue;
      const int first = __builtin_ctz(bits);
      dxp[r0 + (first >> 2) * w + c + sh + (first & 3)] = 0.0f + dyr[c / 4 + half];
    }
  }
}
#endif

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, int n, int c, int h, int w, int k, int st, T* y) {
  const int p = (h - k) / st + 1, q = (w - k) / st + 1;
#pragma omp parallel for
  for (int64_t plane = 0; plane < int64_t(n) * c; ++plane) {
    const T* xp = x + plane * h * w;
    T* yp = y + plane * p * q;
    for (int i = 0; i < p; ++i) {
#ifdef __AVX2__
      if constexpr (std::is_same_v<T, float>)
        if (fast_path(k, st, w) && forward_row4(xp, w, i, yp + i * q)) continue;
#endif
      forward_row(xp, w, k, st, q, i, yp + i * q);
    }
  }
}

template <class T>
void max_pool2d_backward(const T* x, const T* y, const T* dy, int n, int c, int h, int w, int k,
                         int st, T* dx) {
  const int p = (h - k) / st + 1, q = (w - k) / st + 1;
#pragma omp parallel for
  for (int64_t plane = 0; plane < int64_t(n) * c; ++plane) {
    const T* xp = x + plane * h * w;
    const T* yp = y + plane * p * q;
    const T* dyp = dy + plane * p * q;
    T* dxp = dx + plane * h * w;
#ifdef __AVX2__
    if constexpr (std::is_same_v<T, float>)
      if (fast_path(k, st, w)) {  // every row of windows written whole, then the rows below them
        for (int i = 0; i < p; ++i) backward_row4(xp, yp + i * q, dyp + i * q, w, i, dxp);
        std::memset(dxp + int64_t(4 * p) * w, 0, sizeof(T) * (h - 4 * p) * w);
        continue;
      }
#endif
    std::memset(dxp, 0, sizeof(T) * h * w);
    for (int i = 0; i < p; ++i) backward_row(xp, yp + i * q, dyp + i * q, w, k, st, q, i, dxp);
  }
}

template void max_pool2d_forward<float>(const float*, int, int, int, int, int, int, float*);
template void max_pool2d_forward<double>(const double*, int, int, int, int, int, int, double*);
template void max_pool2d_backward<float>(const float*, const float*, const float*, int, int, int,
                                         int, int, int, float*);
template void max_pool2d_backward<double>(const double*, const double*, const double*, int, int,
                                          int, int, int, int, double*);

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {

void max_pool2d_forward(const Tensor& x, int k, int st, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::max_pool2d_forward(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), int(x.dim(2)), int(x.dim(3)),
                            k, st, ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void max_pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, int k, int st,
                        Tensor& dx) {
  Tensor xw = widen(x), yw = widen(y), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::max_pool2d_backward(ptr<T>(xw), ptr<T>(yw), ptr<T>(dyw), int(x.dim(0)), int(x.dim(1)),
                             int(x.dim(2)), int(x.dim(3)), k, st, ptr<T>(o));
  });
  narrow_into(o, dx);
}

}  // namespace dsc::cpu
