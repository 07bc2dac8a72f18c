// Batch normalisation over (N, H, W) per channel of an NCHW tensor on the GPU, with the arithmetic
// of core/cpu/batch_norm_cpu.cpp: x, y, dy, dx [N, C, H, W] in T (f32, f16 or f64); gamma, beta,
// running and saved statistics [C] in P (f32 for f32 and f16 inputs, f64 for f64: the CPU
// adapter's rule). Sums and statistics in double; y = a x + b with a, b rounded to P per channel.
// Training uses the batch mean and biased variance, saves mean and 1/sqrt(var + eps), and updates
// running = momentum * running + (1 - momentum) * batch (Keras) with the UNBIASED variance.
//
// Train and backward: one block (512 threads) per channel, flat loops over its N*H*W elements and
// block reductions in double (deterministic). Eval: a per-channel coefficient kernel, then an
// elementwise kernel. Synchronised batch_norm (layers/sync_batch_norm.h) runs the same per-channel
// pieces (sums, statistics, normalisation, dx) as four kernels, its f64 sums handed out in between
// to be summed over ranks. Tested against the CPU backend in tests/cuda/test_cuda_kernels.cpp.
#include <cmath>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

constexpr int kBnThreads = 512;

// Flat index i over (n, hw) -> element offset of channel c. 32-bit division where i fits (a
// 64-bit division is a long instruction sequence, paid once per element here).
__device__ __forceinline__ int64_t channel_offset(int64_t i, int hw, int c_count, int c) {
  const int64_t img = i <= 0x7fffffff ? int64_t(unsigned(i) / unsigned(hw)) : i / hw;
  return (img * c_count + c) * hw + (i - img * hw);
}

// The channel of this block (blockIdx.x): its N*H*W elements by flat index.
struct ChannelView {
  int c_count, hw, c;
  int64_t m;
  __device__ ChannelView(int n, int c_count_, int hw_)
      : c_count(c_count_), hw(hw_), c(int(blockIdx.x)), m(int64_t(n) * hw_) {}
  __device__ int64_t at(int64_t i) const { return channel_offset(i, hw, c_count, c); }
};

// The sum over the channel of x, or with `centred` of (x - mean)^2; valid in thread 0.
template <class T>
__device__ double channel_sum(const T* x, const ChannelView& ch, bool centred, double mean,
                              double* scratch) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < ch.m; i += blockDim.x) {
    const double v = static_cast<double>(to_acc(x[ch.at(i)]));
    s += centred ? (v - mean) * (v - mean) : v;
  }
  return block_sum(s, scratch);
}

// The backward's sums over the channel, of dy and of dy xhat; valid in thread 0.
template <class T>
__device__ void channel_grad_sums(const T* x, const T* dy, const ChannelView& ch, double mean,
                                  double invstd, double* scratch, double& sdy, double& sdy_xhat) {
  sdy = 0;
  sdy_xhat = 0;
  for (int64_t i = threadIdx.x; i < ch.m; i += blockDim.x) {
    const int64_t j = ch.at(i);
    const double g = to_acc(dy[j]);
    sdy += g;
    sdy_xhat += g * (static_cast<double>(to_acc(x[j])) - mean) * invstd;
  }
  sdy = block_sum(sdy, scratch);
  sdy_xhat = block_sum(sdy_xhat, scratch);
}

template <class P>
__device__ double inv_std(double square_sum, double count, P eps) {
  return 1.0 / sqrt(square_sum / count + eps);
}

// One thread: the saved statistics, and the running ones updated with the unbiased variance.
template <class P>
__device__ void save_statistics(int c, double mean, double invstd, double square_sum,
                                double count, P momentum, P* running_mean, P* running_var,
                                P* save_mean, P* save_invstd) {
  save_mean[c] = static_cast<P>(mean);
  save_invstd[c] = static_cast<P>(invstd);
  const double unbiased = square_sum / (count > 1 ? count - 1 : count);
  running_mean[c] = static_cast<P>(momentum * running_mean[c] + (1 - momentum) * mean);
  running_var[c] = static_cast<P>(momentum * running_var[c] + (1 - momentum) * unbiased);
}

// y = a x + b over the channel, with a and b rounded to P as the CPU does.
template <class T, class P>
__device__ void channel_normalize(const T* x, T* y, const ChannelView& ch, P gamma, P beta,
                                  double mean, double invstd) {
  const P a = static_cast<P>(gamma * invstd), b = static_cast<P>(beta - mean * gamma * invstd);
  for (int64_t i = threadIdx.x; i < ch.m; i += blockDim.x) {
    const int64_t j = ch.at(i);
    y[j] = cast_to<T>(a * static_cast<P>(to_acc(x[j])) + b);
  }
}

// dx = k (dy - mdy - xhat mdyx) over the channel (k = gamma invstd; mdy, mdyx: the means of the
// backward's sums).
template <class T>
__device__ void channel_grad_input(const T* x, const T* dy, T* dx, const ChannelView& ch,
                                   double mean, double invstd, double k, double mdy, double mdyx) {
  for (int64_t i = threadIdx.x; i < ch.m; i += blockDim.x) {
    const int64_t j = ch.at(i);
    const double xhat = (static_cast<double>(to_acc(x[j])) - mean) * invstd;
    dx[j] = cast_to<T>(k * (static_cast<double>(to_acc(dy[j])) - mdy - xhat * mdyx));
  }
}

template <class T, class P>
__global__ void bn_train_kernel(const T* x, int n, int c_count, int hw, const P* gamma,
                                const P* beta, P momentum, P eps, P* running_mean, P* running_var,
                                T* y, P* save_mean, P* save_invstd) {
  __shared__ double scratch[32];
  __shared__ double s_mean, s_invstd;
  const ChannelView ch(n, c_count, hw);
  const double s = channel_sum(x, ch, false, 0.0, scratch);
  if (threadIdx.x == 0) s_mean = s / double(ch.m);
  __syncthreads();
  const double mean = s_mean;
  const double ss = channel_sum(x, ch, true, mean, scratch);
  if (threadIdx.x == 0) {
    s_invstd = inv_std(ss, double(ch.m), eps);
    save_statistics(ch.c, mean, s_invstd, ss, double(ch.m), momentum, running_mean,
                    running_var, save_mean, save_invstd);
  }
  __syncthreads();
  channel_normalize(x, y, ch, gamma[ch.c], beta[ch.c], mean, s_invstd);
}

// coef[c] = a, coef[C + c] = b with y = a x + b (the CPU's eval arithmetic).
template <class P>
__global__ void bn_eval_coef_kernel(int c_count, const P* gamma, const P* beta,
                                    const P* running_mean, const P* running_var, P eps, P* coef) {
  DSC_GRID_STRIDE(c, c_count) {
    const double invstd = 1.0 / sqrt(double(running_var[c]) + eps);
    coef[c] = static_cast<P>(gamma[c] * invstd);
    coef[c_count + c] = static_cast<P>(beta[c] - running_mean[c] * gamma[c] * invstd);
  }
}

template <class T, class P>
__global__ void bn_apply_kernel(const T* x, int64_t total, int c_count, int hw, const P* coef,
                                T* y) {
  DSC_GRID_STRIDE(i, total) {
    const int c = static_cast<int>((i / hw) % c_count);
    y[i] = cast_to<T>(coef[c] * static_cast<P>(to_acc(x[i])) + coef[c_count + c]);
  }
}

template <class T, class P>
__global__ void bn_backward_kernel(const T* x, const T* dy, int n, int c_count, int hw,
                                   const P* gamma, const P* save_mean, const P* save_invstd, T* dx,
                                   P* dgamma, P* dbeta) {
  __shared__ double scratch[32];
  __shared__ double s_dy, s_dy_xhat;
  const ChannelView ch(n, c_count, hw);
  const double mean = save_mean[ch.c], invstd = save_invstd[ch.c];
  double sdy, sdy_xhat;
  channel_grad_sums(x, dy, ch, mean, invstd, scratch, sdy, sdy_xhat);
  if (threadIdx.x == 0) {
    dbeta[ch.c] = static_cast<P>(sdy);
    dgamma[ch.c] = static_cast<P>(sdy_xhat);
    s_dy = sdy;
    s_dy_xhat = sdy_xhat;
  }
  __syncthreads();
  channel_grad_input(x, dy, dx, ch, mean, invstd, gamma[ch.c] * invstd, s_dy / double(ch.m),
                     s_dy_xhat / double(ch.m));
}

// ---- synchronised batch_norm's passes: the pieces of the kernels above, cut where the sums are
// complete ----

// stats null: sums[c] = sum of x, sums[C] = N H W; else sums[c] = sum of (x - stats[c]/stats[C])^2.
template <class T>
__global__ void bn_stat_sums_kernel(const T* x, int n, int c_count, int hw, const double* stats,
                                    double* sums) {
  __shared__ double scratch[32];
  const ChannelView ch(n, c_count, hw);
  const double mean = stats ? stats[ch.c] / stats[c_count] : 0.0;
  const double s = channel_sum(x, ch, stats != nullptr, mean, scratch);
  if (threadIdx.x == 0) {
    sums[ch.c] = s;
    if (!stats && ch.c == 0) sums[c_count] = double(ch.m);
  }
}

// No barrier: every thread derives the statistics from the sums.
template <class T, class P>
__global__ void bn_normalize_kernel(const T* x, int n, int c_count, int hw, const P* gamma,
                                    const P* beta, const double* stats, const double* square_sums,
                                    P momentum, P eps, P* running_mean, P* running_var, T* y,
                                    P* save_mean, P* save_invstd) {
  const ChannelView ch(n, c_count, hw);
  const double count = stats[c_count], mean = stats[ch.c] / count;
  const double invstd = inv_std(square_sums[ch.c], count, eps);
  if (threadIdx.x == 0)
    save_statistics(ch.c, mean, invstd, square_sums[ch.c], count, momentum, running_mean,
                    running_var, save_mean, save_invstd);
  channel_normalize(x, y, ch, gamma[ch.c], beta[ch.c], mean, invstd);
}

template <class T, class P>
__global__ void bn_grad_sums_kernel(const T* x, const T* dy, int n, int c_count, int hw,
                                    const P* save_mean, const P* save_invstd, double* sums,
                                    P* dgamma, P* dbeta) {
  __shared__ double scratch[32];
  const ChannelView ch(n, c_count, hw);
  double sdy, sdy_xhat;
  channel_grad_sums(x, dy, ch, save_mean[ch.c], save_invstd[ch.c], scratch, sdy, sdy_xhat);
  if (threadIdx.x == 0) {
    sums[ch.c] = sdy;
    sums[c_count + ch.c] = sdy_xhat;
    dbeta[ch.c] = static_cast<P>(sdy);
    dgamma[ch.c] = static_cast<P>(sdy_xhat);
  }
}

template <class T, class P>
__global__ void bn_grad_input_kernel(const T* x, const T* dy, int n, int c_count, int hw,
                                     const P* gamma, const P* save_mean, const P* save_invstd,
                                     const double* sums, const double* stats, T* dx) {
  const ChannelView ch(n, c_count, hw);
  const double mean = save_mean[ch.c], invstd = save_invstd[ch.c], count = stats[c_count];
  channel_grad_input(x, dy, dx, ch, mean, invstd, gamma[ch.c] * invstd, sums[ch.c] / count,
                     sums[c_count + ch.c] / count);
}

// Calls f(Tag<T>{}, Tag<P>{}) for the valid (x, parameter) dtype pairs.
template <class F>
void dispatch_bn(const Tensor& x, const Tensor& gamma, const char* op, F&& f) {
  const DType xt = x.dtype(), pt = gamma.dtype();
  if (xt == DType::F32 && pt == DType::F32) return f(Tag<float>{}, Tag<float>{});
  if (xt == DType::F16 && pt == DType::F32) return f(Tag<__half>{}, Tag<float>{});
  if (xt == DType::F64 && pt == DType::F64) return f(Tag<double>{}, Tag<double>{});
  throw Error(detail::cat(op, ": input ", x.str(), " with parameters ", gamma.str(),
                          " (expected f32 or f16 input with f32 parameters, or f64 with f64)"));
}

struct BnDims {
  int n, c, hw;
};

BnDims check_bn(const char* op, const Tensor& x, std::initializer_list<const Tensor*> params) {
  DSC_CHECK(x.ndim() >= 2 && x.dim(0) > 0 && x.dim(1) > 0, op, ": expected [N, C, ...], got ",
            x.str());
  const BnDims d{int(x.dim(0)), int(x.dim(1)), int(x.numel() / (x.dim(0) * x.dim(1)))};
  for (const Tensor* p : params)
    DSC_CHECK(p->numel() == d.c && p->dtype() == (*params.begin())->dtype(), op, ": parameter ",
              p->str(), " for input ", x.str());
  return d;
}

// The f64 sums of synchronised batch_norm: n elements.
void check_sums(const char* op, const Tensor& t, int64_t n) {
  DSC_CHECK(t.dtype() == DType::F64 && t.numel() == n, op, ": ", t.str(), " (expected f64 [", n,
            "])");
}

// Synchronised batch_norm takes f32 or f16 input with f32 parameters.
BnDims check_sync(const char* op, const Tensor& x, std::initializer_list<const Tensor*> params) {
  DSC_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F16, op,
            ": expected f32 or f16 input, got ", x.str());
  const BnDims d = check_bn(op, x, params);
  for (const Tensor* p : params)
    DSC_CHECK(p->dtype() == DType::F32, op, ": f32 parameters, got ", p->str());
  return d;
}

}  // namespace

void batch_norm_stat_sums(const Tensor& x, const Tensor& stats, Tensor& sums) {
  const BnDims d = check_sync("batch_norm_stat_sums", x, {});
  check_sums("batch_norm_stat_sums", sums, stats.defined() ? d.c : d.c + 1);
  if (stats.defined()) check_sums("batch_norm_stat_sums", stats, d.c + 1);
  const double* st = stats.defined() ? dptr<double>(stats) : nullptr;
  if (x.dtype() == DType::F32)
    launch(bn_stat_sums_kernel<float>, d.c, kBnThreads)(dptr<float>(x), d.n, d.c, d.hw, st,
                                                        dptr<double>(sums));
  else
    launch(bn_stat_sums_kernel<__half>, d.c, kBnThreads)(dptr<__half>(x), d.n, d.c, d.hw, st,
                                                         dptr<double>(sums));
}

void batch_norm_normalize(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                          const Tensor& stats, const Tensor& square_sums, const BatchNormParams& p,
                          Tensor& running_mean, Tensor& running_var, Tensor& y, Tensor& save_mean,
                          Tensor& save_invstd) {
  const BnDims d = check_sync("batch_norm_normalize", x,
                              {&gamma, &beta, &running_mean, &running_var, &save_mean,
                               &save_invstd});
  check_sums("batch_norm_normalize", stats, d.c + 1);
  check_sums("batch_norm_normalize", square_sums, d.c);
  same_numel("batch_norm_normalize", x, y);
  dispatch_bn(x, gamma, "batch_norm_normalize", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    launch(bn_normalize_kernel<T, P>, d.c, kBnThreads)(
        dptr<T>(x), d.n, d.c, d.hw, dptr<P>(gamma), dptr<P>(beta), dptr<double>(stats),
        dptr<double>(square_sums), static_cast<P>(p.momentum), static_cast<P>(p.eps),
        dptr<P>(running_mean), dptr<P>(running_var), dptr<T>(y), dptr<P>(save_mean),
        dptr<P>(save_invstd));
  });
}

void batch_norm_grad_sums(const Tensor& x, const Tensor& dy, const Tensor& save_mean,
                          const Tensor& save_invstd, Tensor& sums, Tensor& dgamma,
                          Tensor& dbeta) {
  const BnDims d =
      check_sync("batch_norm_grad_sums", x, {&save_mean, &save_invstd, &dgamma, &dbeta});
  same_numel("batch_norm_grad_sums", x, dy);
  DSC_CHECK(dy.dtype() == x.dtype(), "batch_norm_grad_sums: dy ", dy.str(), " for x ", x.str());
  check_sums("batch_norm_grad_sums", sums, 2 * int64_t(d.c));
  dispatch_bn(x, save_mean, "batch_norm_grad_sums", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    launch(bn_grad_sums_kernel<T, P>, d.c, kBnThreads)(
        dptr<T>(x), dptr<T>(dy), d.n, d.c, d.hw, dptr<P>(save_mean), dptr<P>(save_invstd),
        dptr<double>(sums), dptr<P>(dgamma), dptr<P>(dbeta));
  });
}

void batch_norm_grad_input(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                           const Tensor& save_mean, const Tensor& save_invstd, const Tensor& sums,
                           const Tensor& stats, Tensor& dx) {
  const BnDims d = check_sync("batch_norm_grad_input", x, {&gamma, &save_mean, &save_invstd});
  same_numel("batch_norm_grad_input", x, dy);
  same_numel("batch_norm_grad_input", x, dx);
  DSC_CHECK(dy.dtype() == x.dtype() && dx.dtype() == x.dtype(), "batch_norm_grad_input: dy ",
            dy.str(), " and dx ", dx.str(), " for x ", x.str());
  check_sums("batch_norm_grad_input", sums, 2 * int64_t(d.c));
  check_sums("batch_norm_grad_input", stats, d.c + 1);
  dispatch_bn(x, gamma, "batch_norm_grad_input", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    launch(bn_grad_input_kernel<T, P>, d.c, kBnThreads)(
        dptr<T>(x), dptr<T>(dy), d.n, d.c, d.hw, dptr<P>(gamma), dptr<P>(save_mean),
        dptr<P>(save_invstd), dptr<double>(sums), dptr<double>(stats), dptr<T>(dx));
  });
}

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const BatchNormParams& p, Tensor& running_mean, Tensor& running_var,
                              Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  const BnDims d = check_bn("batch_norm", x,
                            {&gamma, &beta, &running_mean, &running_var, &save_mean, &save_invstd});
  same_numel("batch_norm", x, y);
  if (d.hw == 0) return;
  dispatch_bn(x, gamma, "batch_norm", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    launch(bn_train_kernel<T, P>, d.c, kBnThreads)(
        dptr<T>(x), d.n, d.c, d.hw, dptr<P>(gamma), dptr<P>(beta), static_cast<P>(p.momentum),
        static_cast<P>(p.eps), dptr<P>(running_mean), dptr<P>(running_var), dptr<T>(y),
        dptr<P>(save_mean), dptr<P>(save_invstd));
  });
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var,
                             const BatchNormParams& p, Tensor& y) {
  const BnDims d = check_bn("batch_norm (eval)", x, {&gamma, &beta, &running_mean, &running_var});
  same_numel("batch_norm (eval)", x, y);
  if (x.numel() == 0) return;
  dispatch_bn(x, gamma, "batch_norm (eval)", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    DeviceBuffer coef(sizeof(P) * 2 * size_t(d.c));
    launch(bn_eval_coef_kernel<P>, grid_for(d.c), kThreads)(
        d.c, dptr<P>(gamma), dptr<P>(beta), dptr<P>(running_mean), dptr<P>(running_var),
        static_cast<P>(p.eps), coef.as<P>());
    launch(bn_apply_kernel<T, P>, grid_for(x.numel()), kThreads)(dptr<T>(x), x.numel(), d.c, d.hw,
                                                                 coef.as<P>(), dptr<T>(y));
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta) {
  const BnDims d =
      check_bn("batch_norm backward", x, {&gamma, &save_mean, &save_invstd, &dgamma, &dbeta});
  same_numel("batch_norm backward", x, dy);
  same_numel("batch_norm backward", x, dx);
  if (d.hw == 0) return;
  dispatch_bn(x, gamma, "batch_norm backward", [&](auto xt, auto pt) {
    using T = typename decltype(xt)::type;
    using P = typename decltype(pt)::type;
    launch(bn_backward_kernel<T, P>, d.c, kBnThreads)(
        dptr<T>(x), dptr<T>(dy), d.n, d.c, d.hw, dptr<P>(gamma), dptr<P>(save_mean),
        dptr<P>(save_invstd), dptr<T>(dx), dptr<P>(dgamma), dptr<P>(dbeta));
  });
}

}  // namespace dsc::cuda
