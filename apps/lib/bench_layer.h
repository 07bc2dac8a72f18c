// The seed's single-layer microbenchmark as functions: one normal MxN convolution (with bias) vs
// one depthwise-separable convolution (depthwise MxN without bias, then pointwise 1x1 with bias),
// NCHW, stride 1, run through the framework's ops (ops::conv2d; groups = C for the depthwise
// part) on the chosen device, so the same code times the CPU kernels and, on a GPU, cuDNN and our
// depthwise kernels. Inputs and weights are random normal (never zeros); the weights are scaled by
// 1/sqrt(fan_in) so fp16 stays finite at any width.
//
// Forward only: under NoGradGuard. Forward + backward (--backward): input and weights require
// grad, the forward records the graph, then the backward rules ops::conv2d recorded are called
// with a fixed random dy (y.grad_fn()->backward(dy), and for DepSep the depthwise node's rule on
// the pointwise node's input gradient): exactly the data and filter gradients Tensor::backward()
// would compute, without a scalar loss's extra elementwise passes over y and without the leaf
// `+=` accumulation. The model (apps/lib/intensity.h) then counts 3x the forward's multiply-adds
// and bytes: backward-data (reads dy, w; writes dx) and backward-filter (reads x, dy; writes dw)
// each do the forward's multiply-adds over the same number of elements.
//
// Every derived number comes from intensity.h: multiply-adds, the seed's minimal traffic (params +
// input + output activations in the dtype's bytes; DepSep also unfused: the depthwise output
// written and read back), and the roofline bound from device ceilings. Tested in
// tests/apps/test_bench.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/lib/bench_report.h"
#include "apps/lib/bench_timing.h"
#include "apps/lib/intensity.h"
#include "core/tensor.h"

namespace dsc::bench {

struct LayerSpec {
  std::string kind = "normal";  // normal | depsep (two ops) | depsep-fused (ops::depsep_conv2d)
  Device device = Device::CPU;
  DType dtype = DType::F32;  // F32 or F16 (on the CPU: f16 storage, f32 compute)
  int64_t batch = 1, channels = 128, filters = 128, height = 224, width = 224, kernel = 3;
  std::string padding = "valid";  // valid | same | P (pixels per side)
  bool backward = false;
};

// Pixels of zero padding per side ("same" needs an odd kernel); -1 when the string is invalid.
int padding_pixels(const std::string& padding, int64_t kernel);
// Problems with a spec, each naming the bench flag (--channels, --size, --kernel, ...); empty when
// valid. Sizes must be positive, the kernel no larger than the padded image, counts within int.
std::vector<std::string> validate(const LayerSpec& s);

// The model's problem for a spec (bias on: the layer has one).
intensity::ConvProblem problem_of(const LayerSpec& s);
// The dtype's name as the model and the rows spell it ("fp16", "fp32").
std::string dtype_label(DType t);

// Which kernels run, from the dispatch rules in core/cpu/conv2d_cpu.cpp (CPU) and core/cuda/
// conv2d.cu with the kernel options (GPU); nothing is asked of the backends.
std::string kernels_used(const LayerSpec& s);

// Work of one iteration on preallocated random inputs and weights; build once, call many times.
std::function<void()> make_layer_step(const LayerSpec& s, uint64_t seed = 1);

// Derived throughput numbers of a measured rate.
struct LayerRates {
  double macs_per_sec = 0, bytes_per_sec_min_traffic = 0;
  std::optional<double> bytes_per_sec_unfused;  // depsep
  std::optional<double> roofline_fraction;      // depsep: separate kernels; depsep-fused: fused
  std::optional<double> roofline_fraction_fused;
  std::string roofline_bound;  // compute | memory (of the bound used for roofline_fraction)
};
// conv_per_sec images/s through the model; ceilings optional.
LayerRates layer_rates(const LayerSpec& s, double conv_per_sec,
                       const std::optional<intensity::Ceilings>& ceilings);

struct RunContext {
  TimingOptions timing;
  std::optional<intensity::Ceilings> ceilings;
  int threads = 0;
  std::string command, date;
  bool sample_gpu = true;  // NVML sampling on CUDA
  // Test hook: called before a point is built; may throw (e.g. an injected out-of-memory).
  std::function<void(const LayerSpec&)> before_point;
};

// Builds, warms up and times one point. Out of memory (std::bad_alloc, or a dsc::Error whose
// message contains "out of memory", "out of host memory" or cuDNN/cuBLAS's "ALLOC_FAILED") gives
// a row with status "oom"; any other error propagates.
BenchRow run_point(const LayerSpec& s, const RunContext& ctx);

bool is_out_of_memory(const std::exception& e);

}  // namespace dsc::bench
