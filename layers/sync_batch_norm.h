// Synchronised batch normalisation for data-parallel training (train --sync-bn): the batch
// statistics of every rank's slice of the global batch together, so that N ranks with a global
// batch B normalise exactly as one process with B. Layouts as ops::batch_norm: x [N, C, H, W]
// (f32, or f16 under mixed precision: statistics in f32/f64 as the built-in kernel), gamma, beta,
// running_mean, running_var [C] f32, on the CPU or a GPU. `allreduce_sum` sums an f64 tensor on
// x's device over the ranks in place (train/distributed.h: MPI on the CPU, NCCL on a GPU, so that
// the GPU never waits for the host and a step graph can record it).
//   forward:  sum x per channel (and the count) -> allreduce -> mean; sum (x - mean)^2 ->
//             allreduce -> variance (two passes, as the built-in kernel); y = gamma xhat + beta
//   backward: sum dy and sum dy * xhat per channel -> allreduce -> dx; dgamma and dbeta are this
//             rank's own sums (the gradient average across ranks adds them up)
// The passes are kernel-table entries (core/kernel_list.h, batch_norm_stat_sums ...): the built-in
// kernel's arithmetic with the sums made global. With one rank (an identity allreduce) it equals
// ops::batch_norm to rounding (tests/core/test_sync_batch_norm.cpp; the CUDA passes against the
// CPU's in tests/cuda; 2 ranks against 1 process in tests/dist/).
#pragma once

#include <functional>

#include "core/tensor.h"

namespace dsc {

using AllreduceSum = std::function<void(Tensor& sums)>;

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, float momentum, float eps,
                       const AllreduceSum& allreduce_sum);

}  // namespace dsc
