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

// ---- synchronised batch_norm's passes (kernel_list.h): plain loops, f32 statistics, sums in
// double in the order of the built-in kernel above ----

namespace dsc::cpu {
namespace {

struct SyncDims {
  int n, c, hw;
};

SyncDims sync_dims(const char* op, const Tensor& x, std::initializer_list<const Tensor*> f32) {
  DSC_CHECK(
      x.ndim() >= 2 && x.is_contiguous() && (x.dtype() == DType::F32 || x.dtype() == DType::F16),
      op, ": expected a contiguous f32 or f16 [N, C, ...] input, got ", x.str());
  const SyncDims d{int(x.dim(0)), int(x.dim(1)), hw_of(x)};
  for (const Tensor* t : f32)
    DSC_CHECK(t->dtype() == DType::F32 && t->numel() == d.c, op, ": ", t->str(), " (expected f32 [",
              d.c, "])");
  return d;
}

void check_f64(const char* op, const Tensor& t, int64_t n) {
  DSC_CHECK(t.dtype() == DType::F64 && t.numel() == n, op, ": ", t.str(), " (expected f64 [", n,
            "])");
}

}  // namespace

void batch_norm_stat_sums(const Tensor& x, const Tensor& stats, Tensor& sums) {
  const SyncDims d = sync_dims("batch_norm_stat_sums", x, {});
  check_f64("batch_norm_stat_sums", sums, stats.defined() ? d.c : d.c + 1);
  if (stats.defined()) check_f64("batch_norm_stat_sums", stats, d.c + 1);
  const Tensor xw = widen(x);
  const float* px = xw.data<float>();
  double* s = sums.data<double>();
  const double* st = stats.defined() ? stats.data<double>() : nullptr;
  for (int ch = 0; ch < d.c; ++ch) {
    const double mu = st ? st[ch] / st[d.c] : 0.0;
    double acc = 0;
    for (int i = 0; i < d.n; ++i) {
      const float* p = px + (int64_t(i) * d.c + ch) * d.hw;
      if (st) {
        for (int j = 0; j < d.hw; ++j) {
          const double dv = p[j] - mu;
          acc += dv * dv;
        }
      } else {
        for (int j = 0; j < d.hw; ++j) acc += p[j];
      }
    }
    s[ch] = acc;
  }
  if (!st) s[d.c] = double(int64_t(d.n) * d.hw);
}

void batch_norm_normalize(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                          const Tensor& stats, const Tensor& square_sums, const BatchNormParams& p,
                          Tensor& running_mean, Tensor& running_var, Tensor& y, Tensor& save_mean,
                          Tensor& save_invstd) {
  const SyncDims d =
      sync_dims("batch_norm_normalize", x,
                {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd});
  check_f64("batch_norm_normalize", stats, d.c + 1);
  check_f64("batch_norm_normalize", square_sums, d.c);
  DSC_CHECK(y.shape() == x.shape() && y.dtype() == x.dtype() && y.is_contiguous(),
            "batch_norm_normalize: y ", y.str(), " for x ", x.str());
  const Tensor xw = widen(x);
  Tensor yo = scratch_for(y);
  const float* px = xw.data<float>();
  float* py = yo.data<float>();
  const double* s = stats.data<double>();
  const double* ss = square_sums.data<double>();
  const double m = s[d.c];
  DSC_CHECK(m > 1, "sync_batch_norm: training needs more than one value per channel");
  const float momentum = p.momentum;
  for (int ch = 0; ch < d.c; ++ch) {
    const double mu = s[ch] / m;
    const double var = ss[ch] / m;
    const double is = 1.0 / std::sqrt(var + p.eps);
    save_mean.data<float>()[ch] = float(mu);
    save_invstd.data<float>()[ch] = float(is);
    const double unbiased = ss[ch] / (m - 1);
    float& rm = running_mean.data<float>()[ch];
    float& rv = running_var.data<float>()[ch];
    rm = float(momentum * rm + (1 - momentum) * mu);
    rv = float(momentum * rv + (1 - momentum) * unbiased);
    const float g = gamma.data<float>()[ch];
    const float a = float(g * is);
    const float b = float(beta.data<float>()[ch] - mu * g * is);
    for (int i = 0; i < d.n; ++i) {
      const int64_t off = (int64_t(i) * d.c + ch) * d.hw;
      for (int j = 0; j < d.hw; ++j) py[off + j] = a * px[off + j] + b;
    }
  }
  narrow_into(yo, y);
}

void batch_norm_grad_sums(const Tensor& x, const Tensor& dy, const Tensor& save_mean,
                          const Tensor& save_invstd, Tensor& sums, Tensor& dgamma, Tensor& dbeta) {
  const SyncDims d =
      sync_dims("batch_norm_grad_sums", x, {&save_mean, &save_invstd, &dgamma, &dbeta});
  DSC_CHECK(dy.shape() == x.shape() && dy.dtype() == x.dtype() && dy.is_contiguous(),
            "batch_norm_grad_sums: dy ", dy.str(), " for x ", x.str());
  check_f64("batch_norm_grad_sums", sums, 2 * int64_t(d.c));
  const Tensor xw = widen(x), dyw = widen(dy);
  const float* px = xw.data<float>();
  const float* pdy = dyw.data<float>();
  double* s = sums.data<double>();
  for (int ch = 0; ch < d.c; ++ch) {
    const double mu = save_mean.data<float>()[ch], is = save_invstd.data<float>()[ch];
    double sdy = 0, sdyx = 0;
    for (int i = 0; i < d.n; ++i) {
      const int64_t off = (int64_t(i) * d.c + ch) * d.hw;
      for (int j = 0; j < d.hw; ++j) {
        sdy += pdy[off + j];
        sdyx += pdy[off + j] * (px[off + j] - mu) * is;
      }
    }
    s[ch] = sdy;
    s[d.c + ch] = sdyx;
    dbeta.data<float>()[ch] = float(sdy);
    dgamma.data<float>()[ch] = float(sdyx);
  }
}

void batch_norm_grad_input(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                           const Tensor& save_mean, const Tensor& save_invstd, const Tensor& sums,
                           const Tensor& stats, Tensor& dx) {
  const SyncDims d = sync_dims("batch_norm_grad_input", x, {&gamma, &save_mean, &save_invstd});
  DSC_CHECK(dy.shape() == x.shape() && dy.dtype() == x.dtype() && dy.is_contiguous(),
            "batch_norm_grad_input: dy ", dy.str(), " for x ", x.str());
  check_f64("batch_norm_grad_input", sums, 2 * int64_t(d.c));
  check_f64("batch_norm_grad_input", stats, d.c + 1);
  DSC_CHECK(dx.shape() == x.shape() && dx.dtype() == x.dtype() && dx.is_contiguous(),
            "batch_norm_grad_input: dx ", dx.str(), " for x ", x.str());
  const Tensor xw = widen(x), dyw = widen(dy);
  Tensor o = scratch_for(dx);
  const float* px = xw.data<float>();
  const float* pdy = dyw.data<float>();
  float* pdx = o.data<float>();
  const double* s = sums.data<double>();
  const double m = stats.data<double>()[d.c];
  for (int ch = 0; ch < d.c; ++ch) {
    const double mu = save_mean.data<float>()[ch], is = save_invstd.data<float>()[ch];
    const double k = gamma.data<float>()[ch] * is;
    const double mdy = s[ch] / m, mdyx = s[d.c + ch] / m;
    for (int i = 0; i < d.n; ++i) {
      const int64_t off = (int64_t(i) * d.c + ch) * d.hw;
      for (int j = 0; j < d.hw; ++j) {
        const double xhat = (px[off + j] - mu) * is;
        pdx[off + j] = float(k * (pdy[off + j] - mdy - xhat * mdyx));
      }
    }
  }
  narrow_into(o, dx);
}

}  // namespace dsc::cpu
