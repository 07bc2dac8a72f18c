// Synchronised batch normalisation (see sync_batch_norm.h): plain loops over [N, C, H, W] with
// per-channel double sums, the built-in CPU kernel's arithmetic with the sums reduced across
// ranks between the passes.
#include "layers/sync_batch_norm.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/function.h"

namespace dsc {
namespace {

struct SyncBatchNormFn : Function {
  static constexpr const char* name = "sync_batch_norm";
  AllreduceSum allreduce;
  Tensor mean, invstd;  // f32 [C], as the built-in kernel saves them
  int64_t count = 0;    // values per channel on every rank together
  DType x_dtype = DType::F32;

  // gamma first: its f32 values are used as they are even when x is f16 (core/function.h).
  Tensor forward(const Tensor& gamma, const Tensor& beta, const Tensor& x_in, Tensor running_mean,
                 Tensor running_var, float momentum, float eps, AllreduceSum reduce) {
    DSC_CHECK(x_in.device() == Device::CPU,
              "sync_batch_norm (--sync-bn): runs on the CPU only so far, got ", x_in.str());
    allreduce = std::move(reduce);
    x_dtype = x_in.dtype();
    const Tensor x = x_in.dtype() == DType::F32 ? x_in.contiguous() : x_in.to(DType::F32);
    const int n = int(x.dim(0)), c = int(x.dim(1)), hw = int(x.numel() / (x.dim(0) * x.dim(1)));
    const float* px = x.data<float>();
    const float* g = gamma.data<float>();
    const float* b = beta.data<float>();
    float* rm = running_mean.data<float>();
    float* rv = running_var.data<float>();
    // Pass 1: per-channel sums and the count.
    std::vector<double> s(c + 1, 0.0);
    for (int ch = 0; ch < c; ++ch)
      for (int i = 0; i < n; ++i) {
        const float* p = px + (int64_t(i) * c + ch) * hw;
        for (int j = 0; j < hw; ++j) s[ch] += p[j];
      }
    s[c] = double(int64_t(n) * hw);
    allreduce(s.data(), c + 1);
    count = int64_t(s[c]);
    DSC_CHECK(count > 1, "sync_batch_norm: training needs more than one value per channel");
    const double m = s[c];
    // Pass 2: per-channel sums of squared deviations from the global mean.
    std::vector<double> mu(c), ss(c, 0.0);
    for (int ch = 0; ch < c; ++ch) {
      mu[ch] = s[ch] / m;
      for (int i = 0; i < n; ++i) {
        const float* p = px + (int64_t(i) * c + ch) * hw;
        for (int j = 0; j < hw; ++j) {
          const double d = p[j] - mu[ch];
          ss[ch] += d * d;
        }
      }
    }
    allreduce(ss.data(), c);
    mean = Tensor::empty({c});
    invstd = Tensor::empty({c});
    Tensor y = Tensor::empty(x.shape());
    float* py = y.data<float>();
    for (int ch = 0; ch < c; ++ch) {
      const double var = ss[ch] / m;
      const double is = 1.0 / std::sqrt(var + eps);
      mean.data<float>()[ch] = float(mu[ch]);
      invstd.data<float>()[ch] = float(is);
      const double unbiased = ss[ch] / (m - 1);
      rm[ch] = float(momentum * rm[ch] + (1 - momentum) * mu[ch]);
      rv[ch] = float(momentum * rv[ch] + (1 - momentum) * unbiased);
      const float a = float(g[ch] * is);
      const float bb = float(b[ch] - mu[ch] * g[ch] * is);
      for (int i = 0; i < n; ++i) {
        const int64_t off = (int64_t(i) * c + ch) * hw;
        for (int j = 0; j < hw; ++j) py[off + j] = a * px[off + j] + bb;
      }
    }
    save_for_backward({x, gamma});
    return x_dtype == DType::F32 ? y : y.to(x_dtype);
  }

  std::vector<Tensor> backward(const Tensor& dy_in) {
    const Tensor& x = saved(0);
    const Tensor& gamma = saved(1);
    const Tensor dy = dy_in.dtype() == DType::F32 ? dy_in.contiguous() : dy_in.to(DType::F32);
    const int n = int(x.dim(0)), c = int(x.dim(1)), hw = int(x.numel() / (x.dim(0) * x.dim(1)));
    const float* px = x.data<float>();
    const float* pdy = dy.data<float>();
    std::vector<double> sums(2 * c, 0.0);  // sum dy, sum dy * xhat per channel
    for (int ch = 0; ch < c; ++ch) {
      const double mu = mean.data<float>()[ch], is = invstd.data<float>()[ch];
      for (int i = 0; i < n; ++i) {
        const int64_t off = (int64_t(i) * c + ch) * hw;
        for (int j = 0; j < hw; ++j) {
          sums[ch] += pdy[off + j];
          sums[c + ch] += pdy[off + j] * (px[off + j] - mu) * is;
        }
      }
    }
    Tensor dgamma = Tensor::empty({c}), dbeta = Tensor::empty({c});
    for (int ch = 0; ch < c; ++ch) {  // this rank's own: the gradient average sums them
      dbeta.data<float>()[ch] = float(sums[ch]);
      dgamma.data<float>()[ch] = float(sums[c + ch]);
    }
    allreduce(sums.data(), 2 * c);
    Tensor dx = Tensor::empty(x.shape());
    float* pdx = dx.data<float>();
    const double m = double(count);
    for (int ch = 0; ch < c; ++ch) {
      const double mu = mean.data<float>()[ch], is = invstd.data<float>()[ch];
      const double k = gamma.data<float>()[ch] * is;
      const double mdy = sums[ch] / m, mdyx = sums[c + ch] / m;
      for (int i = 0; i < n; ++i) {
        const int64_t off = (int64_t(i) * c + ch) * hw;
        for (int j = 0; j < hw; ++j) {
          const double xhat = (px[off + j] - mu) * is;
          pdx[off + j] = float(k * (pdy[off + j] - mdy - xhat * mdyx));
        }
      }
    }
    return {dgamma, dbeta, x_dtype == DType::F32 ? dx : dx.to(x_dtype), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, float momentum, float eps,
                       const AllreduceSum& allreduce_sum) {
  DSC_CHECK(x.ndim() == 4 && gamma.numel() == x.dim(1), "sync_batch_norm: input ", x.str(),
            " and parameters ", gamma.str(), " (expected [N, C, H, W] and [C])");
  DSC_CHECK(gamma.dtype() == DType::F32, "sync_batch_norm: f32 parameters, got ", gamma.str());
  return apply<SyncBatchNormFn>(gamma, beta, x, running_mean, running_var, momentum, eps,
                                allreduce_sum);
}

}  // namespace dsc
