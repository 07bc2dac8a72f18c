// Batch normalisation over (N, H, W) per channel of an NCHW tensor on the GPU, with the arithmetic
// of core/cpu/batch_norm_cpu.cpp: x, y, dy, dx [N, C, H, W] in T (f32, f16 or f64); gamma, beta,
// running and saved statistics [C] in P (f32 for f32 and f16 inputs, f64 for f64: the CPU
// adapter's rule). Sums and statistics in double; y = a x + b with a, b rounded to P per channel.
// Training uses the batch mean and biased variance, saves mean and 1/sqrt(var + eps), and updates
// running = momentum * running + (1 - momentum) * batch (Keras) with the UNBIASED variance.
//
// Train and backward: one block (512 threads) per channel, flat loops over its N*H*W elements and
// block reductions in double (deterministic). Eval: a per-channel coefficient kernel, then an
// elementwise kernel. Synchronised batch_norm (layers/sync_batch_norm.h) runs the train and
// backward kernels cut in two where their sums are complete, the sums handed out in f64 to be
// summed over ranks in between. Tested against the CPU backend in
// tests/cuda/test_cuda_kernels.cpp.
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

template <class T, class P>
__global__ void bn_train_kernel(const T* x, int n, int c_count, int hw, const P* gamma,
                                const P* beta, P momentum, P eps, P* running_mean, P* running_var,
                                T* y, P* save_mean, P* save_invstd) {
  __shared__ double scratch[32];
  __shared__ double s_mean;
  __shared__ P s_a, s_b;
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  double s = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) s += static_cast<double>(to_acc(x[at(i)]));
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) s_mean = s / double(m);
  __syncthreads();
  const double mean = s_mean;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const double d = static_cast<double>(to_acc(x[at(i)])) - mean;
    ss += d * d;
  }
  ss = block_sum(ss, scratch);
  if (threadIdx.x == 0) {
    const double var = ss / double(m);
    const double invstd = 1.0 / sqrt(var + eps);
    save_mean[c] = static_cast<P>(mean);
    save_invstd[c] = static_cast<P>(invstd);
    const double unbiased = m > 1 ? ss / double(m - 1) : var;
    running_mean[c] = static_cast<P>(momentum * running_mean[c] + (1 - momentum) * mean);
    running_var[c] = static_cast<P>(momentum * running_var[c] + (1 - momentum) * unbiased);
    s_a = static_cast<P>(gamma[c] * invstd);
    s_b = static_cast<P>(beta[c] - mean * gamma[c] * invstd);
  }
  __syncthreads();
  const P a = s_a, b = s_b;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    y[j] = cast_to<T>(a * static_cast<P>(to_acc(x[j])) + b);
  }
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
  __shared__ double s_k, s_mdy, s_mdyx;
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  const double mean = save_mean[c], invstd = save_invstd[c];
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  double sdy = 0, sdy_xhat = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    const double g = to_acc(dy[j]);
    sdy += g;
    sdy_xhat += g * (static_cast<double>(to_acc(x[j])) - mean) * invstd;
  }
  sdy = block_sum(sdy, scratch);
  if (threadIdx.x == 0) s_mdy = sdy;  // parked: scratch is reused by the next sum
  sdy_xhat = block_sum(sdy_xhat, scratch);
  if (threadIdx.x == 0) {
    sdy = s_mdy;
    dbeta[c] = static_cast<P>(sdy);
    dgamma[c] = static_cast<P>(sdy_xhat);
    s_k = gamma[c] * invstd;
    s_mdy = sdy / double(m);
    s_mdyx = sdy_xhat / double(m);
  }
  __syncthreads();
  const double k = s_k, mdy = s_mdy, mdyx = s_mdyx;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    const double xhat = (static_cast<double>(to_acc(x[j])) - mean) * invstd;
    dx[j] = cast_to<T>(k * (static_cast<double>(to_acc(dy[j])) - mdy - xhat * mdyx));
  }
}

// ---- synchronised batch_norm's passes: the kernels above cut where their sums are complete ----

// stats null: sums[c] = sum of x, sums[C] = N H W; else sums[c] = sum of (x - stats[c]/stats[C])^2.
template <class T>
__global__ void bn_stat_sums_kernel(const T* x, int n, int c_count, int hw, const double* stats,
                                    double* sums) {
  __shared__ double scratch[32];
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  const double mean = stats ? stats[c] / stats[c_count] : 0.0;
  double s = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const double v = static_cast<double>(to_acc(x[at(i)]));
    s += stats ? (v - mean) * (v - mean) : v;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    sums[c] = s;
    if (!stats && c == 0) sums[c_count] = double(m);
  }
}

template <class T, class P>
__global__ void bn_normalize_kernel(const T* x, int n, int c_count, int hw, const P* gamma,
                                    const P* beta, const double* stats, const double* square_sums,
                                    P momentum, P eps, P* running_mean, P* running_var, T* y,
                                    P* save_mean, P* save_invstd) {
  __shared__ P s_a, s_b;
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  const double count = stats[c_count];
  const double mean = stats[c] / count, var = square_sums[c] / count;
  const double invstd = 1.0 / sqrt(var + eps);
  if (threadIdx.x == 0) {
    s_a = static_cast<P>(gamma[c] * invstd);
    s_b = static_cast<P>(beta[c] - mean * gamma[c] * invstd);
  }
  __syncthreads();  // (global memory is written after it, as the emulator's first pass expects)
  if (threadIdx.x == 0) {
    save_mean[c] = static_cast<P>(mean);
    save_invstd[c] = static_cast<P>(invstd);
    const double unbiased = count > 1 ? square_sums[c] / (count - 1) : var;
    running_mean[c] = static_cast<P>(momentum * running_mean[c] + (1 - momentum) * mean);
    running_var[c] = static_cast<P>(momentum * running_var[c] + (1 - momentum) * unbiased);
  }
  const P a = s_a, b = s_b;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    y[j] = cast_to<T>(a * static_cast<P>(to_acc(x[j])) + b);
  }
}

template <class T, class P>
__global__ void bn_grad_sums_kernel(const T* x, const T* dy, int n, int c_count, int hw,
                                    const P* save_mean, const P* save_invstd, double* sums,
                                    P* dgamma, P* dbeta) {
  __shared__ double scratch[32];
  __shared__ double s_dy;
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  const double mean = save_mean[c], invstd = save_invstd[c];
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  double sdy = 0, sdy_xhat = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    const double g = to_acc(dy[j]);
    sdy += g;
    sdy_xhat += g * (static_cast<double>(to_acc(x[j])) - mean) * invstd;
  }
  sdy = block_sum(sdy, scratch);
  if (threadIdx.x == 0) s_dy = sdy;  // parked: scratch is reused by the next sum
  sdy_xhat = block_sum(sdy_xhat, scratch);
  if (threadIdx.x == 0) {
    sums[c] = s_dy;
    sums[c_count + c] = sdy_xhat;
    dbeta[c] = static_cast<P>(s_dy);
    dgamma[c] = static_cast<P>(sdy_xhat);
  }
}

template <class T, class P>
__global__ void bn_grad_input_kernel(const T* x, const T* dy, int n, int c_count, int hw,
                                     const P* gamma, const P* save_mean, const P* save_invstd,
                                     const double* sums, const double* stats, T* dx) {
  const int c = blockIdx.x;
  const int64_t m = int64_t(n) * hw;
  auto at = [&](int64_t i) { return channel_offset(i, hw, c_count, c); };
  const double mean = save_mean[c], invstd = save_invstd[c], count = stats[c_count];
  const double k = gamma[c] * invstd;
  const double mdy = sums[c] / count, mdyx = sums[c_count + c] / count;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    const int64_t j = at(i);
    const double xhat = (static_cast<double>(to_acc(x[j])) - mean) * invstd;
    dx[j] = cast_to<T>(k * (static_cast<double>(to_acc(dy[j])) - mdy - xhat * mdyx));
  }
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
