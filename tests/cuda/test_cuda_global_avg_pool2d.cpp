// The CUDA global_avg_pool2d entries against the CPU table (the specification) on fresh random
// inputs, CUDA outputs poisoned with NaN first, in f32, f16 and f64 with the tolerances of
// cuda_test_util.h: planes from 1x1 to larger than a warp's stride (so lanes loop), more planes
// than one block's warps, and an empty batch. Skipped where no usable GPU is present.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "core/backend.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

using namespace dsc;
using namespace dsc::test;

TEST_CASE("cuda global_avg_pool2d forward and backward against the CPU" *
          doctest::skip(no_cuda())) {
  std::mt19937_64 rng(81);
  const Shape cases[] = {{2, 3, 1, 1}, {3, 5, 7, 9}, {4, 70, 8, 8}, {2, 3, 13, 11}, {1, 2, 32, 32}};
  for (DType t : {DType::F32, DType::F16, DType::F64})
    for (const Shape& xs : cases) {
      const std::string what = std::string(dtype_name(t)) + " " + shape_str(xs);
      const Shape ys{xs[0], xs[1]};
      Tensor x = randn(xs, rng, t);
      Tensor y_ref = cpu_out(ys, t), y = poisoned(ys, t);
      cpu_table().global_avg_pool2d_forward(x, y_ref);
      cuda_table().global_avg_pool2d_forward(on_gpu(x), y);
      check_close(y, y_ref, rtol_for(t), "global_avg_pool2d forward " + what);
      Tensor dy = randn(ys, rng, t);
      Tensor dx_ref = cpu_out(xs, t), dx = poisoned(xs, t);
      cpu_table().global_avg_pool2d_backward(dy, dx_ref);
      cuda_table().global_avg_pool2d_backward(on_gpu(dy), dx);
      check_close(dx, dx_ref, rtol_for(t), "global_avg_pool2d backward " + what);
    }
  // An empty batch writes nothing and does not fail.
  Tensor x0 = Tensor::empty({0, 3, 4, 4}, DType::F32, Device::CUDA);
  Tensor y0 = Tensor::empty({0, 3}, DType::F32, Device::CUDA);
  cuda_table().global_avg_pool2d_forward(x0, y0);
  cuda_table().global_avg_pool2d_backward(y0, x0);
}

TEST_CASE("cuda global_avg_pool2d through the op: autograd on the device" *
          doctest::skip(no_cuda())) {
  std::mt19937_64 rng(82);
  Tensor x = randn({3, 4, 5, 6}, rng);
  Tensor xg = on_gpu(x);
  xg.set_requires_grad(true);
  x.set_requires_grad(true);
  Tensor r = randn({3, 4}, rng);
  ops::sum(ops::mul(ops::global_avg_pool2d(x), r)).backward();
  ops::sum(ops::mul(ops::global_avg_pool2d(xg), on_gpu(r))).backward();
  check_close(xg.grad(), x.grad(), rtol_for(DType::F32), "global_avg_pool2d grad on the device");
}
