// Batch normalisation, CPU (see batch_norm.h). Channels split over threads; sums in double.
#include <cmath>
#include <cstdint>

#include "core/cpu/batch_norm.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

template <class T>
void batch_norm_forward_train(const T* x, int n, int c, int hw, const T* gamma, const T* beta,
                              T momentum, T eps, T* running_mean, T* running_var, T* y,
                              T* save_mean, T* save_invstd) {
  const int64_t m = int64_t(n) * hw;
#pragma omp parallel for
  for (int ch = 0; ch < c; ++ch) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; ++i) {
      const T* p = x + (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) s += p[j];
    }
    const double mean = s / m;
    for (int i = 0; i < n; ++i) {
      const T* p = x + (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) {
        const double d = p[j] - mean;
        ss += d * d;
      }
    }
    const double var = ss / m;
    const double invstd = 1.0 / std::sqrt(var + eps);
    save_mean[ch] = static_cast<T>(mean);
    save_invstd[ch] = static_cast<T>(invstd);
    const double unbiased = m > 1 ? ss / (m - 1) : var;
    running_mean[ch] = static_cast<T>(momentum * running_mean[ch] + (1 - momentum) * mean);
    running_var[ch] = static_cast<T>(momentum * running_var[ch] + (1 - momentum) * unbiased);
    const T a = static_cast<T>(gamma[ch] * invstd);
    const T b = static_cast<T>(beta[ch] - mean * gamma[ch] * invstd);
    for (int i = 0; i < n; ++i) {
      const T* p = x + (int64_t(i) * c + ch) * hw;
      T* q = y + (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) q[j] = a * p[j] + b;
    }
  }
}

template <class T>
void batch_norm_forward_eval(const T* x, int n, int c, int hw, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y) {
#pragma omp parallel for
  for (int ch = 0; ch < c; ++ch) {
    const double invstd = 1.0 / std::sqrt(double(running_var[ch]) + eps);
    const T a = static_cast<T>(gamma[ch] * invstd);
    const T b = static_cast<T>(beta[ch] - running_mean[ch] * gamma[ch] * invstd);
    for (int i = 0; i < n; ++i) {
      const T* p = x + (int64_t(i) * c + ch) * hw;
      T* q = y + (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) q[j] = a * p[j] + b;
    }
  }
}

template <class T>
void batch_norm_backward(const T* x, const T* dy, int n, int c, int hw, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta) {
  const int64_t m = int64_t(n) * hw;
#pragma omp parallel for
  for (int ch = 0; ch < c; ++ch) {
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    double sdy = 0, sdy_xhat = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t off = (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) {
        sdy += dy[off + j];
        sdy_xhat += dy[off + j] * (x[off + j] - mean) * invstd;
      }
    }
    dbeta[ch] = static_cast<T>(sdy);
    dgamma[ch] = static_cast<T>(sdy_xhat);
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    const double k = gamma[ch] * invstd;
    const double mdy = sdy / m, mdyx = sdy_xhat / m;
    for (int i = 0; i < n; ++i) {
      const int64_t off = (int64_t(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) {
        const double xhat = (x[off + j] - mean) * invstd;
        dx[off + j] = static_cast<T>(k * (dy[off + j] - mdy - xhat * mdyx));
      }
    }
  }
}

#define DSC_INSTANTIATE(T)                                                                         \
  template void batch_norm_forward_train<T>(const T*, int, int, int, const T*, const T*, T, T, T*, \
                                            T*, T*, T*, T*);                                       \
  template void batch_norm_forward_eval<T>(const T*, int, int, int, const T*, const T*, const T*,  \
                                           const T*, T, T*);                                       \
  template void batch_norm_backward<T>(const T*, const T*, int, int, int, const T*, const T*,      \
                                       const T*, T*, T*, T*);
DSC_INSTANTIATE(float)
DSC_INSTANTIATE(double)
#undef DSC_INSTANTIATE

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------
// Statistics in the parameters' dtype: f32, or f64 for checks.

namespace dsc::cpu {
namespace {

int hw_of(const Tensor& x) { return int(x.numel() / (x.dim(0) * x.dim(1))); }

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                      const BatchNormParams& p, Tensor& rm, Tensor& rv, Tensor& y, Tensor& sm,
                      Tensor& si) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_forward_train<T>(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                     ptr<T>(gamma), ptr<T>(beta), T(p.momentum), T(p.eps),
                                     ptr<T>(rm), ptr<T>(rv), ptr<T>(yo), ptr<T>(sm), ptr<T>(si));
  });
  narrow_into(yo, y);
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                     const Tensor& rv, const BatchNormParams& p, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_forward_eval<T>(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                    ptr<T>(gamma), ptr<T>(beta), ptr<T>(rm), ptr<T>(rv), T(p.eps),
                                    ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& sm,
                const Tensor& si, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  Tensor xw = widen(x), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_backward<T>(ptr<T>(xw), ptr<T>(dyw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                ptr<T>(gamma), ptr<T>(sm), ptr<T>(si), ptr<T>(o), ptr<T>(dgamma),
                                ptr<T>(dbeta));
  });
  narrow_into(o, dx);
}

}  // namespace dsc::cpu
