// The single-layer microbenchmark (see bench_layer.h): what it measures is the wall time of one
// normal convolution or one DepSep pair (depthwise then pointwise) over a batch, through
// ops::conv2d on the chosen device; how: random normal inputs and weights built once,
// bench_timing.h's loop (warm-up, calibration, repeats bracketed by the device's synchronize), NVML
// utilisation sampled over the timed repeats on CUDA (core/gpu_monitor.h), and every derived rate
// from the model in apps/lib/intensity.h. The kernel names come from the dispatch rules of
// core/cpu/conv2d_cpu.cpp and core/cuda/conv2d.cu. Tested in tests/apps/test_bench.cpp.
#include "apps/lib/bench_layer.h"

#include <climits>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/cpu/winograd.h"
#include "core/cpu/winograd_gemm.h"
#include "core/gpu_monitor.h"
#include "core/kernel_options.h"
#include "core/ops.h"

namespace dsc::bench {
namespace {

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 6) return false;
  for (char ch : s)
    if (ch < '0' || ch > '9') return false;
  return true;
}

// ---- what the CPU backend runs (mirrors core/cpu/conv2d_cpu.cpp; Winograd asks winograd.h) ---

#ifdef DSC_CPU_MICRO_KERNEL
constexpr bool kMicroKernelBuilt = true;
constexpr bool kMicroKernelAnyChannels = DSC_CPU_MICRO_KERNEL == 256;  // see depsep_conv2d_cpu.cpp
const std::string kMicroKernel = std::string(cpu::micro::isa()) + " micro-kernel";
#else
constexpr bool kMicroKernelBuilt = false;
constexpr bool kMicroKernelAnyChannels = false;
const std::string kMicroKernel;
#endif

// Whether conv2d_cpu.cpp takes Winograd for this stride-1 convolution: the backend's own test.
bool cpu_winograd(const LayerSpec& s, int pad) {
  ConvShape c;
  c.n = int(s.batch), c.c = int(s.channels), c.h = int(s.height), c.w = int(s.width);
  c.k = int(s.filters), c.r = c.s = int(s.kernel), c.pad = pad;
  return cpu::winograd::applicable(c);
}

// 1x1, stride 1, pad 0 over an hw-pixel image with c input channels; `fused`: the fused DepSep
// layer's, which on the AVX2 build takes the micro-kernel for any c.
std::string cpu_pointwise_forward(int64_t c, int64_t hw, bool fused = false) {
  const bool any_c = fused && kMicroKernelAnyChannels;
  if (c < 16 && !(any_c && hw % 32 == 0)) return "pointwise rows (C < 16)";
  if (kMicroKernelBuilt && hw % 32 == 0) return "pointwise gemm (" + kMicroKernel + ")";
  return "pointwise gemm (OpenBLAS)";
}
std::string cpu_pointwise_backward(int64_t c, int64_t hw, bool fused = false) {
  const bool any_c = fused && kMicroKernelAnyChannels;
  const bool fast = kMicroKernelBuilt && hw % 32 == 0 && (c >= 16 || any_c);
  return std::string("pointwise gemm (data: ") + (fast ? kMicroKernel : std::string("OpenBLAS")) +
         ", filter: OpenBLAS)";
}

std::string cpu_kernels(const LayerSpec& s, int pad) {
  const int64_t p = s.height + 2 * pad - s.kernel + 1, q = s.width + 2 * pad - s.kernel + 1;
  std::string fwd, bwd;
  if (s.kind == "normal") {
    if (s.kernel == 1 && pad == 0) {
      fwd = cpu_pointwise_forward(s.channels, p * q);
      bwd = cpu_pointwise_backward(s.channels, p * q);
    } else if (cpu_winograd(s, pad)) {
      fwd = bwd = "winograd F(4x4,3x3)";
    } else {
      fwd = "im2col+gemm";
      bwd = "im2col+gemm (data: gemm+col2im)";
    }
  } else if (s.kind == "depsep-fused") {
    fwd = "fused per image: depthwise stencil into a cached buffer + " +
          cpu_pointwise_forward(s.channels, p * q, true);
    bwd = "fused per image: depthwise recomputed, ReLU mask + bias gradient, " +
          cpu_pointwise_backward(s.channels, p * q, true) + ", depthwise stencils";
  } else {
    fwd = "depthwise stencil + " + cpu_pointwise_forward(s.channels, p * q);
    bwd = "depthwise stencil + " + cpu_pointwise_backward(s.channels, p * q);
  }
  std::string out = s.backward ? "fwd: " + fwd + "; bwd: " + bwd : fwd;
  if (s.dtype == DType::F16) out += " [f16 widened to f32]";
  return out;
}

// ---- what the CUDA backend runs (core/cuda/conv2d.cu, depthwise.cu, depsep_conv2d.cu) ---------

std::string cudnn_name() {
  return kernel_options().conv_search == KernelOptions::ConvSearch::Heuristic
             ? "cuDNN (algorithm from cudnnGet heuristics)"
             : "cuDNN (algorithm chosen at run time by cudnnFind)";
}

// The 1x1 convolution (core/cuda/conv2d.cu: pointwise_cublas).
std::string pointwise_name() {
  if (kernel_options().pointwise == KernelOptions::Pointwise::Cublas)
    return "cuBLAS strided-batched GEMM";
  return cudnn_name() + " (--pointwise cudnn)";
}

std::string cuda_kernels(const LayerSpec& s) {
  std::string out;
  if (s.kind == "normal") {
    out = cudnn_name() + " + dsc bias kernel";
  } else {
    const KernelOptions::Depthwise impl = kernel_options().depthwise;
    std::string dw;
    if (impl == KernelOptions::Depthwise::Own) {
      // Backward: dx and dW in one pass over dy when the stride is 1 and the padding < kernel.
      const int pad = padding_pixels(s.padding, s.kernel);
      dw = s.backward && pad >= 0 && pad < s.kernel
               ? "dsc depthwise kernel (tiled; backward: dx and dW in one pass)"
               : "dsc depthwise kernel (tiled)";
    } else if (impl == KernelOptions::Depthwise::Naive) {
      dw = "dsc depthwise kernel (naive)";
    } else {
      dw = "cuDNN grouped (--depthwise cudnn)";
    }
    out = dw + " + pointwise " + pointwise_name() + " + dsc bias kernel";
    if (s.kind == "depsep-fused") {
      // ops::depsep_conv2d runs core/cuda/depsep_conv2d.cu's entries: one fused forward kernel and,
      // in f16 with K <= 128, a fused backward kernel for the pointwise half (else composed), or
      // (--depsep composed) the same composition as the depsep kind.
      if (kernel_options().depsep == KernelOptions::DepSep::Composed) {
        out = "composed (--depsep composed): " + out;
      } else {
        const std::string fwd =
            std::string("dsc fused DepSep kernel (depthwise into shared memory, pointwise on ") +
            (s.dtype == DType::F16 ? "tensor cores (wmma)" : "FMA register tiles") +
            ", bias in the epilogue)";
        const std::string bwd =
            s.dtype == DType::F16 && s.filters <= 128
                ? "dsc fused DepSep backward kernel (depthwise recomputed and ReLU-masked dy kept "
                  "on chip, dD = Wp^T g and dWp on tensor cores (wmma), dWp and db from block "
                  "partials) + " + dw
                : "depthwise recomputed, " + out;
        out = s.backward ? "fwd: " + fwd + "; bwd: " + bwd : fwd;
      }
    }
  }
  if (s.dtype == DType::F16) out += " [f16 data, f32 accumulation]";
  return out;
}

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, double std, const LayerSpec& s) {
  return Tensor::randn(shape, rng, std, s.dtype).to(s.device);
}

}  // namespace

int padding_pixels(const std::string& padding, int64_t kernel) {
  if (padding == "valid") return 0;
  if (padding == "same") return kernel % 2 == 1 ? int((kernel - 1) / 2) : -1;
  if (all_digits(padding)) return std::stoi(padding);
  return -1;
}

std::vector<std::string> validate(const LayerSpec& s) {
  std::vector<std::string> e;
  const std::pair<const char*, int64_t> sizes[] = {{"--batch", s.batch},
                                                   {"--channels (-C)", s.channels},
                                                   {"--filters (-K)", s.filters},
                                                   {"--height (or --size)", s.height},
                                                   {"--width (or --size)", s.width},
                                                   {"--kernel", s.kernel}};
  bool ok = true;
  for (const auto& [flag, v] : sizes) {
    if (v <= 0) {
      e.push_back(std::string(flag) + " must be a positive integer, got " + std::to_string(v));
      ok = false;
    } else if (v > INT_MAX / 4) {
      e.push_back(std::string(flag) + " = " + std::to_string(v) + " is too large");
      ok = false;
    }
  }
  if (s.kind != "normal" && s.kind != "depsep" && s.kind != "depsep-fused") {
    e.push_back("--kinds: expected normal, depsep or depsep-fused, got '" + s.kind + "'");
  }
  const int pad = padding_pixels(s.padding, s.kernel);
  if (pad < 0) {
    if (s.padding == "same" && s.kernel > 0) {
      e.push_back("--padding same needs an odd --kernel (symmetric zero padding), got --kernel " +
                  std::to_string(s.kernel));
    } else {
      e.push_back("--padding must be valid, same or pixels per side (0, 1, ...), got '" +
                  s.padding + "'");
    }
    ok = false;
  }
  if (!ok) return e;
  const int64_t ph = s.height + 2 * pad, pw = s.width + 2 * pad;
  if (s.kernel > ph || s.kernel > pw) {
    e.push_back("--kernel " + std::to_string(s.kernel) + " is larger than the padded image " +
                std::to_string(ph) + "x" + std::to_string(pw) + " (--height " +
                std::to_string(s.height) + ", --width " + std::to_string(s.width) + ", --padding " +
                s.padding + "); expected --kernel <= " + std::to_string(std::min(ph, pw)));
    return e;
  }
  // Tensor sizes must fit the framework's int shapes; the model guards its own int64 counts.
  const long double out_hw = (long double)(ph - s.kernel + 1) * (pw - s.kernel + 1);
  const long double biggest =
      std::max<long double>({(long double)s.batch * s.channels * s.height * s.width,
                             (long double)s.batch * std::max(s.channels, s.filters) * out_hw,
                             (long double)s.filters * s.channels * s.kernel * s.kernel});
  if (biggest > (long double)INT64_MAX / 16) {
    e.push_back("sizes too large: --batch x --channels x --height x --width overflows");
  }
  return e;
}

std::string dtype_label(DType t) { return t == DType::F16 ? "fp16" : "fp32"; }

intensity::ConvProblem problem_of(const LayerSpec& s) {
  intensity::ConvProblem p;
  p.kernel_h = p.kernel_w = s.kernel;
  p.in_channels = s.channels;
  p.out_channels = s.filters;
  p.height = s.height;
  p.width = s.width;
  p.batch = s.batch;
  p.dtype = dtype_label(s.dtype);
  p.padding = s.padding;
  p.bias = true;
  return p;
}

std::string kernels_used(const LayerSpec& s) {
  const int pad = padding_pixels(s.padding, s.kernel);
  return s.device == Device::CPU ? cpu_kernels(s, pad) : cuda_kernels(s);
}

std::function<void()> make_layer_step(const LayerSpec& s, uint64_t seed) {
  const int pad = padding_pixels(s.padding, s.kernel);
  DSC_CHECK(pad >= 0, "bench: invalid --padding '", s.padding, "'");
  std::mt19937_64 rng(seed);
  const int64_t p = s.height + 2 * pad - s.kernel + 1, q = s.width + 2 * pad - s.kernel + 1;
  const int64_t kk = s.kernel * s.kernel;
  Tensor x = random_tensor({s.batch, s.channels, s.height, s.width}, rng, 1.0, s);
  Tensor dy = random_tensor({s.batch, s.filters, p, q}, rng, 1.0, s);
  const int groups = int(s.channels);

  if (s.kind == "normal") {
    Tensor w = random_tensor({s.filters, s.channels, s.kernel, s.kernel}, rng,
                             1.0 / std::sqrt(double(s.channels * kk)), s);
    Tensor b = random_tensor({s.filters}, rng, 1.0, s);
    if (!s.backward) {
      return [=] {
        NoGradGuard no_grad;
        Tensor y = ops::conv2d(x, w, b, 1, pad, 1);
      };
    }
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    return [=] {
      Tensor y = ops::conv2d(x, w, b, 1, pad, 1);
      std::vector<Tensor> g = y.grad_fn()->backward(dy);  // dx, dw, db
    };
  }

  Tensor wd =
      random_tensor({s.channels, 1, s.kernel, s.kernel}, rng, 1.0 / std::sqrt(double(kk)), s);
  Tensor wp =
      random_tensor({s.filters, s.channels, 1, 1}, rng, 1.0 / std::sqrt(double(s.channels)), s);
  Tensor bp = random_tensor({s.filters}, rng, 1.0, s);
  if (s.kind == "depsep-fused") {
    if (!s.backward) {
      return [=] {
        NoGradGuard no_grad;
        Tensor y = ops::depsep_conv2d(x, wd, wp, bp, 1, pad, false);
      };
    }
    x.set_requires_grad(true);
    wd.set_requires_grad(true);
    wp.set_requires_grad(true);
    bp.set_requires_grad(true);
    return [=] {
      Tensor y = ops::depsep_conv2d(x, wd, wp, bp, 1, pad, false);
      std::vector<Tensor> g = y.grad_fn()->backward(dy);  // dx, dwd, dwp, dbp
    };
  }
  if (!s.backward) {
    return [=] {
      NoGradGuard no_grad;
      Tensor t = ops::conv2d(x, wd, Tensor(), 1, pad, groups);
      Tensor y = ops::conv2d(t, wp, bp, 1, 0, 1);
    };
  }
  x.set_requires_grad(true);
  wd.set_requires_grad(true);
  wp.set_requires_grad(true);
  bp.set_requires_grad(true);
  return [=] {
    Tensor t = ops::conv2d(x, wd, Tensor(), 1, pad, groups);
    Tensor y = ops::conv2d(t, wp, bp, 1, 0, 1);
    std::vector<Tensor> gp = y.grad_fn()->backward(dy);     // dt, dwp, dbp
    std::vector<Tensor> gd = t.grad_fn()->backward(gp[0]);  // dx, dwd
  };
}

LayerRates layer_rates(const LayerSpec& s, double conv_per_sec,
                       const std::optional<intensity::Ceilings>& ceilings) {
  const intensity::Analysis a = intensity::analyze(problem_of(s));
  const int64_t passes = s.backward ? 3 : 1;  // forward, backward-data, backward-filter
  const double batches_per_sec = conv_per_sec / double(s.batch);
  const bool normal = s.kind == "normal";
  auto scaled = [&](intensity::KindCounts k) {
    k.macs *= passes;
    k.flops *= passes;
    k.memory_elems *= passes;
    k.memory_bytes *= passes;
    return k;
  };
  const intensity::KindCounts minimal = scaled(normal ? a.normal : a.depsep_fused);
  LayerRates r;
  r.macs_per_sec = double(minimal.macs) * batches_per_sec;
  r.bytes_per_sec_min_traffic = double(minimal.memory_bytes) * batches_per_sec;
  if (!normal) {
    r.bytes_per_sec_unfused = double(scaled(a.depsep_separate).memory_bytes) * batches_per_sec;
  }
  if (ceilings) {
    // The kind as our code runs it: a normal conv, DepSep as two kernels (separate), or fused
    // DepSep (minimal traffic); the fused ideal is reported next to the DepSep kinds.
    const bool fused = s.kind == "depsep-fused";
    const intensity::RooflinePoint bound = intensity::roofline_point(
        normal || fused ? minimal : scaled(a.depsep_separate), s.batch, *ceilings);
    r.roofline_fraction = conv_per_sec / bound.images_per_s;
    r.roofline_bound = intensity::bound_name(bound.bound);
    if (!normal) {
      const intensity::RooflinePoint fused = intensity::roofline_point(minimal, s.batch, *ceilings);
      r.roofline_fraction_fused = conv_per_sec / fused.images_per_s;
    }
  }
  return r;
}

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  if (dynamic_cast<const dsc::Error*>(&e)) {
    // The CUDA allocator and cudaGetErrorString say "out of memory", the CPU allocator "out of
    // host memory"; cuDNN and cuBLAS report their allocation failures as *_STATUS_ALLOC_FAILED.
    const std::string m = e.what();
    return m.find("out of memory") != std::string::npos ||
           m.find("out of host memory") != std::string::npos ||
           m.find("ALLOC_FAILED") != std::string::npos;
  }
  return false;
}

BenchRow run_point(const LayerSpec& s, const RunContext& ctx) {
  BenchRow row;
  row.kind = s.kind;
  row.device = device_name(s.device);
  row.dtype = dtype_label(s.dtype);
  row.batch = s.batch;
  row.channels = s.channels;
  row.filters = s.filters;
  row.height = s.height;
  row.width = s.width;
  row.kernel = s.kernel;
  row.padding = s.padding;
  row.direction = s.backward ? "forward+backward" : "forward";
  row.kernels = kernels_used(s);
  row.threads = ctx.threads;
  row.repeats = ctx.timing.repeats;
  row.min_time = ctx.timing.min_time;
  row.command = ctx.command;
  try {
    if (ctx.before_point) ctx.before_point(s);
    std::function<void()> step = make_layer_step(s);
    const KernelTable& k = kernels(s.device);
    std::function<void()> sync = [&k] { k.synchronize(); };
    const int64_t chunk = warm_up(step, sync, ctx.timing);
    std::optional<GpuMonitor> monitor;
    if (s.device == Device::CUDA && ctx.sample_gpu) {
      monitor.emplace();
      monitor->start();
    }
    const CpuTimes before = cpu_times_now();
    const TimingStats t = time_repeats(step, sync, chunk, ctx.timing.repeats, ctx.timing.min_time);
    row.other_load = other_cpu_load(before, cpu_times_now());
    if (monitor) {
      const GpuUtilization u = monitor->stop();
      if (u.valid) {
        row.sm_util = u.sm_percent;
        row.mem_util = u.memory_percent;
      }
    }
    row.iterations = t.iterations;
    row.seconds_per_batch = t.median_s;
    row.conv_per_sec = double(s.batch) / t.median_s;
    row.conv_per_sec_min = double(s.batch) / t.max_s;
    row.conv_per_sec_max = double(s.batch) / t.min_s;
    const LayerRates r = layer_rates(s, *row.conv_per_sec, ctx.ceilings);
    row.macs_per_sec = r.macs_per_sec;
    row.tflops = 2.0 * r.macs_per_sec / 1e12;
    row.tflops_mac = r.macs_per_sec / 1e12;
    row.bytes_per_sec_min_traffic = r.bytes_per_sec_min_traffic;
    row.bytes_per_sec_unfused = r.bytes_per_sec_unfused;
    row.roofline_fraction = r.roofline_fraction;
    row.roofline_fraction_fused = r.roofline_fraction_fused;
    row.roofline_bound = r.roofline_bound;
  } catch (const std::exception& e) {
    if (!is_out_of_memory(e)) throw;
    row.status = "oom";
    row.error = e.what();
  }
  row.date = utc_now_iso8601();
  row.load_avg = load_average_1m();
  return row;
}

}  // namespace dsc::bench
