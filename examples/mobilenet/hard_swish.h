// hard_swish, MobileNetV3's activation, as an out-of-tree op through dsc's extension API:
//   y = x * relu6(x + 3) / 6,   dy/dx = 0 for x < -3, 1 for x > 3, (2x + 3) / 6 between.
// Elementwise over any shape, in the input's dtype (f32, f64, f16 storage with f32 arithmetic).
// Its kernels, one per device on raw pointers (hard_swish_kernels.h): hard_swish_cpu.cpp, and
// hard_swish_cuda.cu, built only when the installed dsc has CUDA (otherwise
// hard_swish_no_cuda.cpp, which refuses).
// Gradient-checked in test_mobilenet.cpp (hard_swish_grad), the CUDA kernel against the CPU one.
#pragma once

#include <string>
#include <vector>

#include "core/function.h"
#include "layers/module.h"

namespace mobilenet {

// The differentiable op: y = hard_swish(x), recorded in dsc's graph.
dsc::Tensor hard_swish(const dsc::Tensor& x);

// The op as a layer.
class HardSwish : public dsc::Module {
 public:
  dsc::Tensor forward(const dsc::Tensor& x) override { return hard_swish(x); }
  std::string name() const override { return "HardSwish"; }
};

// The op's forward and backward rule (dsc::apply<HardSwishFn>(x) is hard_swish(x)).
struct HardSwishFn : dsc::Function {
  static constexpr const char* name = "hard_swish";
  dsc::Tensor forward(const dsc::Tensor& x);
  std::vector<dsc::Tensor> backward(const dsc::Tensor& dy);
};

}  // namespace mobilenet
