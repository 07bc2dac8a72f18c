// Synchronised batch normalisation (see sync_batch_norm.h): the device's four passes
// (core/kernel_list.h, batch_norm_stat_sums ... batch_norm_grad_input) with the per-channel sums
// reduced across ranks between them.
#include "layers/sync_batch_norm.h"

#include "core/backend.h"
#include "core/error.h"
#include "core/function.h"

namespace dsc {
namespace {

struct SyncBatchNormFn : Function {
  static constexpr const char* name = "sync_batch_norm";
  AllreduceSum allreduce;
  Tensor mean, invstd;  // f32 [C], as the built-in kernel saves them
  Tensor stats;         // f64 [C + 1]: the sums of x over every rank, and their count

  // gamma first: its f32 values are used as they are even when x is f16 (core/function.h).
  Tensor forward(const Tensor& gamma, const Tensor& beta, const Tensor& x_in, Tensor running_mean,
                 Tensor running_var, float momentum, float eps, AllreduceSum reduce) {
    allreduce = std::move(reduce);
    const Tensor x = x_in.contiguous();
    const int64_t c = x.dim(1);
    const Device dev = x.device();
    const KernelTable& k = kernels(dev);
    // Pass 1: the sums per channel and the count, over every rank.
    stats = Tensor::empty({c + 1}, DType::F64, dev);
    k.batch_norm_stat_sums(x, Tensor(), stats);
    allreduce(stats);
    // Pass 2: the squared deviations from the global mean, over every rank.
    Tensor square_sums = Tensor::empty({c}, DType::F64, dev);
    k.batch_norm_stat_sums(x, stats, square_sums);
    allreduce(square_sums);
    mean = Tensor::empty({c}, DType::F32, dev);
    invstd = Tensor::empty({c}, DType::F32, dev);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
    k.batch_norm_normalize(x, gamma, beta, stats, square_sums, BatchNormParams{momentum, eps},
                           running_mean, running_var, y, mean, invstd);
    save_for_backward({x, gamma});
    return y;
  }

  std::vector<Tensor> backward(const Tensor& dy_in) {
    const Tensor& x = saved(0);
    const Tensor& gamma = saved(1);
    const Tensor dy = dy_in.dtype() == x.dtype() ? dy_in.contiguous() : dy_in.to(x.dtype());
    const int64_t c = x.dim(1);
    const Device dev = x.device();
    const KernelTable& k = kernels(dev);
    // dgamma and dbeta are this rank's own sums: the gradient average adds them up.
    Tensor sums = Tensor::empty({2 * c}, DType::F64, dev);
    Tensor dgamma = Tensor::empty({c}, DType::F32, dev),
           dbeta = Tensor::empty({c}, DType::F32, dev);
    k.batch_norm_grad_sums(x, dy, mean, invstd, sums, dgamma, dbeta);
    allreduce(sums);
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), dev);
    k.batch_norm_grad_input(x, dy, gamma, mean, invstd, sums, stats, dx);
    return {dgamma, dbeta, dx, Tensor(), Tensor()};
  }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, float momentum, float eps,
                       const AllreduceSum& allreduce_sum) {
  DSC_CHECK(x.ndim() == 4 && gamma.numel() == x.dim(1), "sync_batch_norm: input ", x.str(),
            " and parameters ", gamma.str(), " (expected [N, C, H, W] and [C])");
  DSC_CHECK(gamma.dtype() == DType::F32, "sync_batch_norm: f32 parameters, got ", gamma.str());
  DSC_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F16,
            "sync_batch_norm: f32 or f16 input, got ", x.str());
  return apply<SyncBatchNormFn>(gamma, beta, x, running_mean, running_var, momentum, eps,
                                allreduce_sum);
}

}  // namespace dsc
