// The extension API on the GPU (core/function.h, core/cuda_interop.h): what an out-of-tree CUDA
// kernel needs (device_data<T>(), the compute stream, the launch check) and an applied Function
// on CUDA tensors, forward and backward, against the same Function on the CPU. The availability
// answers are checked in every build.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "core/cuda_interop.h"
#include "core/error.h"
#include "core/function.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"

using namespace dsc;
using namespace dsc::test;

namespace {

// y = x * w + x, composed of built-in ops: runs on whichever device its inputs are on.
struct MulAdd : Function {
  static constexpr const char* name = "mul_add";
  Tensor forward(const Tensor& x, const Tensor& w) {
    save_for_backward({x, w});
    return ops::add(ops::mul(x, w), x);
  }
  std::vector<Tensor> backward(const Tensor& dy) {
    return {ops::add(ops::mul(dy, saved(1)), dy), ops::mul(dy, saved(0))};
  }
};

}  // namespace

TEST_CASE("cuda interop: availability is answered in every build") {
#ifdef DSC_HAVE_CUDA
  CHECK(built_with_cuda());
#else
  CHECK_FALSE(built_with_cuda());
#endif
  CHECK(cuda_available() == device_available(Device::CUDA));
  if (!cuda_available()) {
    CHECK_THROWS_WITH_AS(cuda_stream(), doctest::Contains("--device cpu"), Error);
  }
}

TEST_CASE("cuda interop: device pointers, the compute stream and an applied Function" *
          doctest::skip(no_cuda())) {
  CHECK(cuda_stream() != nullptr);
  CHECK_NOTHROW(cuda_check_launch("nothing"));
  std::mt19937_64 rng(5);
  const Tensor x_cpu = randn({3, 7}, rng), w_cpu = randn({3, 7}, rng);
  Tensor x = on_gpu(x_cpu), w = on_gpu(w_cpu);
  CHECK(x.device_data<float>() == x.raw());
  CHECK_THROWS_WITH_AS(x.data<float>(), doctest::Contains(".to(Device::CPU)"), Error);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  Tensor xc = x_cpu.clone(), wc = w_cpu.clone();
  xc.set_requires_grad(true);
  wc.set_requires_grad(true);
  const Tensor y = apply<MulAdd>(x, w), yc = apply<MulAdd>(xc, wc);
  CHECK(y.device() == Device::CUDA);
  check_close(y, yc, rtol_for(DType::F32), "mul_add forward");
  ops::sum(y).backward();
  ops::sum(yc).backward();
  check_close(x.grad(), xc.grad(), rtol_for(DType::F32), "mul_add dx");
  check_close(w.grad(), wc.grad(), rtol_for(DType::F32), "mul_add dw");
  CHECK(x.grad().device() == Device::CUDA);
}
