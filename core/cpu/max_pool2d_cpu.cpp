// Max pooling, CPU (see max_pool2d.h). One (n, c) plane per loop iteration, planes split over
// threads.
#include <cstdint>
#include <cstring>

#include "core/cpu/max_pool2d.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

template <class T>
void max_pool2d_forward(const T* x, int n, int c, int h, int w, int k, int st, T* y) {
  const int p = (h - k) / st + 1, q = (w - k) / st + 1;
#pragma omp parallel for
  for (int64_t plane = 0; plane < int64_t(n) * c; ++plane) {
    const T* xp = x + plane * h * w;
    T* yp = y + plane * p * q;
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < q; ++j) {
        T best = xp[(i * st) * w + j * st];
        for (int a = 0; a < k; ++a)
          for (int b = 0; b < k; ++b) {
            const T v = xp[(i * st + a) * w + j * st + b];
            if (v > best) best = v;
          }
        yp[i * q + j] = best;
      }
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
    std::memset(dxp, 0, sizeof(T) * h * w);
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < q; ++j) {
        bool done = false;
        for (int a = 0; a < k && !done; ++a)
          for (int b = 0; b < k && !done; ++b) {
            const int idx = (i * st + a) * w + j * st + b;
            if (xp[idx] == yp[i * q + j]) {
              dxp[idx] += dyp[i * q + j];
              done = true;
            }
          }
      }
    }
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
