// Synchronised batch normalisation for data-parallel training (train --sync-bn): the batch
// statistics of every rank's slice of the global batch together, so that N ranks with a global
// batch B normalise exactly as one process with B. Layouts as ops::batch_norm: x [N, C, H, W]
// (f32, or f16 under mixed precision: statistics in f32/f64 as the built-in kernel), gamma, beta,
// running_mean, running_var [C] f32. `allreduce_sum` sums a host array of doubles over the ranks
// in place (train/distributed.h).
//   forward:  sum x per channel (and the count) -> allreduce -> mean; sum (x - mean)^2 ->
//             allreduce -> variance (two passes, as the built-in kernel); y = gamma xhat + beta
//   backward: sum dy and sum dy * xhat per channel -> allreduce -> dx; dgamma and dbeta are this
//             rank's own sums (the gradient average across ranks adds them up)
// The arithmetic is the built-in CPU kernel's (core/cpu/batch_norm_cpu.cpp) with the sums made
// global: with one rank (an identity allreduce) it is bit-identical to ops::batch_norm (tested in
// tests/core/test_sync_batch_norm.cpp; 2 ranks against 1 process in tests/dist/). CPU only.
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace dsc {

using AllreduceSum = std::function<void(double* data, int64_t n)>;

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, float momentum, float eps,
                       const AllreduceSum& allreduce_sum);

}  // namespace dsc
