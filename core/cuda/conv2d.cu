// conv2d on the GPU: the three table entries and their dispatch. Layouts as in core/cpu/conv2d.h:
// x [N, C, H, W], w [K, C/groups, R, S], bias [K], y [N, K, P, Q], NCHW, zero padding, no dilation.
// Which implementation runs is chosen by the kernel options (core/kernel_options.h).
//
// groups == 1 (and depthwise with depthwise=cudnn, as cuDNN's grouped convolution): cuDNN's
// convolution API with NCHW descriptors, f32 or f16 data and f32 compute. Math type: FMA only for
// f32 (no TF32, so f32 results match the CPU backend to ~1e-6), tensor cores for f16. Per
// (shape, dtype) a plan keeps the descriptors and, per direction, the algorithm chosen on first use
// by cudnnFind*AlgorithmEx (benchmarks on the call's own buffers; conv-search=heuristic: the
// cudnnGet*_v7 heuristics instead) within the options' workspace limit, deterministic algorithms
// only unless the options allow others; choices are searched again when the options change, and
// listed by algorithm_report(). The run passes the workspace size cuDNN gives for the chosen
// algorithm under the math type it runs with. The workspace comes from runtime.h's grown-and-reused
// buffer. Bias: y += b[k] by our own kernel; the bias gradient is a per-channel reduction kernel
// (elementwise.cu).
// depthwise (groups == C): our own kernels (depthwise.cu) unless depthwise=cudnn.
// f64 convolutions are CPU-only except through the own depthwise kernels and the cuBLAS
// pointwise path (pointwise.cu).
// Tested against the CPU backend in tests/cuda/test_cuda_conv2d.cpp.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"
#include "core/kernel_options.h"

namespace dsc::cuda {
namespace {

// ---- settings (core/kernel_options.h) -----------------------------------------------------------

using Depthwise = KernelOptions::Depthwise;

// Pointwise (1x1) convolutions go to cuBLAS GEMMs (pointwise.cu) unless the options say cuDNN;
// always cuBLAS in f64, which cuDNN's convolutions refuse.
bool pointwise_cublas(const ConvShape& s, DType t) {
  if (!pointwise_shape(s)) return false;
  return kernel_options().pointwise == KernelOptions::Pointwise::Cublas || t == DType::F64;
}

size_t search_workspace_limit() {
  size_t limit = size_t(kernel_options().conv_workspace_mb) << 20;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) limit = std::min(limit, free_b / 2);
  (void)cudaGetLastError();
  return limit;
}

std::string shape_text(const ConvShape& s, DType t) {
  return detail::cat(dtype_name(t), " x [", s.n, ", ", s.c, ", ", s.h, ", ", s.w, "] * w [", s.k,
                     ", ", s.c / s.groups, ", ", s.r, ", ", s.s, "], stride ", s.stride, ", pad ",
                     s.pad, ", groups ", s.groups);
}

// ---- plans --------------------------------------------------------------------------------------

struct ConvKey {
  int n, c, h, w, k, r, s, stride, pad, groups;
  DType dtype;
  bool operator==(const ConvKey& o) const {
    return n == o.n && c == o.c && h == o.h && w == o.w && k == o.k && r == o.r && s == o.s &&
           stride == o.stride && pad == o.pad && groups == o.groups && dtype == o.dtype;
  }
};

struct ConvKeyHash {
  size_t operator()(const ConvKey& k) const {
    size_t h = static_cast<size_t>(k.dtype);
    for (int v : {k.n, k.c, k.h, k.w, k.k, k.r, k.s, k.stride, k.pad, k.groups})
      h = h * 1000003u ^ static_cast<size_t>(v);
    return h;
  }
};

struct Choice {
  bool ready = false;
  uint64_t generation = 0;  // kernel_options_generation() the choice was made under
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;           // what the convolution runs with
  cudnnMathType_t measured_math = CUDNN_DEFAULT_MATH;  // what cuDNN reported for the entry
  size_t workspace = 0;  // cuDNN's size for (algo, math): what the run passes
  bool deterministic = false;
  float ms = -1;  // measured time; -1: chosen by the heuristics
};

struct ConvPlan {
  ConvShape shape;
  DType dtype = DType::F32;
  cudnnDataType_t dt = CUDNN_DATA_FLOAT;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Choice fwd, bwd_data, bwd_filter;
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// f32 runs with FMA math only (no TF32), so its results match the CPU backend to ~1e-6; f16 uses
// tensor cores.
cudnnMathType_t search_math(cudnnDataType_t dt) {
  return dt == CUDNN_DATA_HALF ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

struct PlanCache {
  std::mutex mu;
  std::unordered_map<ConvKey, std::unique_ptr<ConvPlan>, ConvKeyHash> plans;
};
PlanCache& plan_cache() {
  static auto* cache = new PlanCache;  // never destroyed (see runtime.cu)
  return *cache;
}

ConvPlan& plan_for(const ConvShape& s, DType dtype) {
  PlanCache& cache = plan_cache();
  const ConvKey key{s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad, s.groups, dtype};
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it != cache.plans.end()) return *it->second;
  auto p = std::make_unique<ConvPlan>();
  p->shape = s;
  p->dtype = dtype;
  p->dt = dtype == DType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  DSC_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  DSC_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, p->dt, s.n, s.c, s.h, s.w));
  DSC_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  DSC_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(p->w, p->dt, CUDNN_TENSOR_NCHW, s.k, s.c / s.groups, s.r, s.s));
  DSC_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  DSC_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, s.pad, s.pad, s.stride, s.stride, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  if (s.groups != 1) DSC_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->conv, s.groups));
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, search_math(p->dt)));
  int on = 0, ok = 0, op = 0, oq = 0;
  DSC_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &ok, &op, &oq));
  DSC_CHECK(on == s.n && ok == s.k && op == s.p() && oq == s.q(), "conv2d: cuDNN output [", on,
            ", ", ok, ", ", op, ", ", oq, "] differs from the expected [", s.n, ", ", s.k, ", ",
            s.p(), ", ", s.q(), "]");
  DSC_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  DSC_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, p->dt, s.n, s.k, op, oq));
  ConvPlan& ref = *p;
  cache.plans.emplace(key, std::move(p));
  return ref;
}

bool current(const Choice& c) { return c.ready && c.generation == kernel_options_generation(); }

// The first usable candidate, in cuDNN's order (fastest first when benchmarked):
//  - its status is success and, with KernelOptions::deterministic, it is deterministic;
//  - f32: an entry measured with tensor-op math is skipped (that is TF32, another kernel); the
//    others run with FMA math;
//  - f16: runs with the math type the entry was measured with;
//  - the workspace is cuDNN's size for the algorithm under the math it runs with (the entry's
//    `memory` was measured under its own math type and may differ), within the limit.
// `size_of(algo, &bytes)` sets the descriptor's math type first and returns false when cuDNN
// refuses the combination.
template <class Perf, class SizeOf>
Choice pick(ConvPlan& p, const Perf* perf, int returned, size_t limit, bool measured,
            SizeOf&& size_of, const char* what) {
  const bool deterministic = kernel_options().deterministic;
  int refused_determinism = 0;
  for (int i = 0; i < returned; ++i) {
    const Perf& r = perf[i];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && r.determinism != CUDNN_DETERMINISTIC) {
      ++refused_determinism;
      continue;
    }
    const bool tensor_op =
        r.mathType == CUDNN_TENSOR_OP_MATH || r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (p.dt == CUDNN_DATA_FLOAT && tensor_op) continue;
    Choice c;
    c.ready = true;
    c.generation = kernel_options_generation();
    c.algo = static_cast<int>(r.algo);
    c.measured_math = r.mathType;
    c.math = p.dt == CUDNN_DATA_HALF ? r.mathType : CUDNN_FMA_MATH;
    DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, c.math));
    if (!size_of(r.algo, &c.workspace) || c.workspace > limit) continue;
    c.deterministic = r.determinism == CUDNN_DETERMINISTIC;
    c.ms = measured ? r.time : -1.0f;
    return c;
  }
  throw Error(detail::cat(
      "conv2d ", what, ": cuDNN offers no usable algorithm for ", shape_text(p.shape, p.dtype),
      " (", returned, " candidates, ", refused_determinism,
      " refused as non-deterministic, workspace limit ", limit >> 20,
      " MiB; try a larger conv workspace, the heuristic search, or deterministic off)"));
}

// Asks the heuristics (`get`) for every algorithm and its workspace, then, unless the options say
// heuristic, benchmarks them (`find`) with a workspace as large as the largest candidate needs
// (capped by the options' limit and half the free memory), and picks with pick().
template <class Perf, class Find, class Get, class SizeOf>
Choice search(ConvPlan& p, const char* what, Find&& find, Get&& get, SizeOf&& size_of) {
  DSC_CHECK(!capturing(), "conv2d ", what, ": choosing cuDNN's algorithm for ",
            shape_text(p.shape, p.dtype),
            " inside a captured step graph (run the step once without capturing first)");
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math(p.dt)));
  Perf perf[16];
  int returned = 0;
  get(perf, &returned);
  const size_t limit = search_workspace_limit();
  if (kernel_options().conv_search == KernelOptions::ConvSearch::Heuristic)
    return pick(p, perf, returned, limit, false, size_of, what);
  size_t largest = 0;
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit)
      largest = std::max(largest, perf[i].memory);
  void* ws = nullptr;
  try {
    ws = largest ? workspace(largest) : nullptr;
  } catch (const Error&) {  // out of memory: search among the algorithms that need none
    largest = 0;
  }
  returned = 0;
  find(perf, &returned, ws, largest);
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math(p.dt)));
  return pick(p, perf, returned, limit, true, size_of, what);
}

void check_conv(const char* op, const ConvShape& s, const Tensor& x, const Tensor& w,
                const Tensor& y) {
  DSC_CHECK(x.numel() == s.x_numel() && w.numel() == s.w_numel() && y.numel() == s.y_numel(), op,
            ": tensors ", x.str(), ", ", w.str(), ", ", y.str(), " do not match ",
            shape_text(s, x.dtype()));
  DSC_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), op, ": dtypes differ: ", x.str(),
            ", ", w.str(), ", ", y.str());
  if (x.dtype() == DType::F64)
    throw Error(detail::cat(op,
                            ": f64 is CPU-only for cuDNN convolutions (own depthwise kernels "
                            "excepted); use --device cpu for f64"));
  DSC_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F16, op, " on cuda: unsupported dtype ",
            dtype_name(x.dtype()));
}

const float kOne = 1.0f, kZero = 0.0f;  // scaling factors for f32 / f16 data

void cudnn_forward(const ConvShape& s, const Tensor& x, const Tensor& w, Tensor& y) {
  check_conv("conv2d forward", s, x, w, y);
  ConvPlan& p = plan_for(s, x.dtype());
  cudnnHandle_t h = cudnn_handle();
  if (!current(p.fwd)) {
    p.fwd = search<cudnnConvolutionFwdAlgoPerf_t>(
        p, "forward",
        [&](cudnnConvolutionFwdAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
              h, p.x, x.raw(), p.w, w.raw(), p.conv, p.y, y.raw(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
              n, perf, ws, bytes));
        },
        [&](cudnnConvolutionFwdAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
              h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, n, perf));
        },
        [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, algo, bytes) ==
                 CUDNN_STATUS_SUCCESS;
        });
  }
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd.math));
  void* ws = workspace(p.fwd.workspace);
  DSC_CUDNN_CHECK(cudnnConvolutionForward(h, &kOne, p.x, x.raw(), p.w, w.raw(), p.conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(p.fwd.algo), ws,
                                          p.fwd.workspace, &kZero, p.y, y.raw()));
  if (sync_after_launch()) synchronize();
}

void cudnn_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  check_conv("conv2d backward-data", s, dx, w, dy);
  ConvPlan& p = plan_for(s, dx.dtype());
  cudnnHandle_t h = cudnn_handle();
  if (!current(p.bwd_data)) {
    p.bwd_data = search<cudnnConvolutionBwdDataAlgoPerf_t>(
        p, "backward-data",
        [&](cudnnConvolutionBwdDataAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              h, p.w, w.raw(), p.y, dy.raw(), p.conv, p.x, dx.raw(),
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, perf, ws, bytes));
        },
        [&](cudnnConvolutionBwdDataAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
              h, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, perf));
        },
        [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x, algo,
                                                              bytes) == CUDNN_STATUS_SUCCESS;
        });
  }
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_data.math));
  void* ws = workspace(p.bwd_data.workspace);
  DSC_CUDNN_CHECK(
      cudnnConvolutionBackwardData(h, &kOne, p.w, w.raw(), p.y, dy.raw(), p.conv,
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(p.bwd_data.algo), ws,
                                   p.bwd_data.workspace, &kZero, p.x, dx.raw()));
  if (sync_after_launch()) synchronize();
}

void cudnn_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw) {
  check_conv("conv2d backward-filter", s, x, dw, dy);
  ConvPlan& p = plan_for(s, x.dtype());
  cudnnHandle_t h = cudnn_handle();
  if (!current(p.bwd_filter)) {
    p.bwd_filter = search<cudnnConvolutionBwdFilterAlgoPerf_t>(
        p, "backward-filter",
        [&](cudnnConvolutionBwdFilterAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
              h, p.x, x.raw(), p.y, dy.raw(), p.conv, p.w, dw.raw(),
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, perf, ws, bytes));
        },
        [&](cudnnConvolutionBwdFilterAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
              h, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, perf));
        },
        [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, algo,
                                                                bytes) == CUDNN_STATUS_SUCCESS;
        });
  }
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_filter.math));
  void* ws = workspace(p.bwd_filter.workspace);
  DSC_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      h, &kOne, p.x, x.raw(), p.y, dy.raw(), p.conv,
      static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.bwd_filter.algo), ws, p.bwd_filter.workspace,
      &kZero, p.w, dw.raw()));
  if (sync_after_launch()) synchronize();
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH:
      return "default";
    case CUDNN_TENSOR_OP_MATH:
      return "tensor-op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return "tensor-op (conversion)";
    case CUDNN_FMA_MATH:
      return "fma";
  }
  return "?";
}

const char* algo_name(const char* direction, int algo) {
  static const char* const fwd[] = {
      "implicit_gemm", "implicit_precomp_gemm", "gemm", "direct", "fft", "fft_tiling",
      "winograd",      "winograd_nonfused"};
  static const char* const data[] = {"algo_0",     "algo_1",   "fft",
                                     "fft_tiling", "winograd", "winograd_nonfused"};
  static const char* const filter[] = {
      "algo_0", "algo_1", "fft", "algo_3", "winograd", "winograd_nonfused", "fft_tiling"};
  auto at = [&](const char* const* names, int n) {
    return algo >= 0 && algo < n ? names[algo] : "?";
  };
  if (std::strcmp(direction, "forward") == 0) return at(fwd, 8);
  if (std::strcmp(direction, "backward-data") == 0) return at(data, 6);
  return at(filter, 7);
}

void check_device(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t) DSC_CHECK(t->device() == Device::CUDA, op, ": tensor ", t->str(), " is not on cuda");
}

}  // namespace

// ---- table entries ------------------------------------------------------------------------------

void conv2d_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y) {
  check_device("conv2d forward", {&x, &w, b, &y});
  if (b)
    DSC_CHECK(b->numel() == s.k && b->dtype() == y.dtype(), "conv2d forward: bias ", b->str(),
              " for ", s.k, " output channels of ", y.str());
  if (y.numel() == 0) return;  // empty batch
  if (s.depthwise()) {
    const Depthwise impl = kernel_options().depthwise;
    if (impl != Depthwise::Cudnn) {
      depthwise_forward(s, x, w, b, y, impl == Depthwise::Naive);
      return;
    }
  }
  if (pointwise_cublas(s, x.dtype())) {
    pointwise_forward(s, x, w, y);
  } else {
    cudnn_forward(s, x, w, y);
  }
  if (b) add_channel_bias(y, *b, s.k, int64_t(s.p()) * s.q());
}

void conv2d_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  check_device("conv2d backward-data", {&dy, &w, &dx});
  if (dx.numel() == 0) return;
  if (s.depthwise()) {
    const Depthwise impl = kernel_options().depthwise;
    if (impl != Depthwise::Cudnn) {
      depthwise_backward_data(s, dy, w, dx, impl == Depthwise::Naive);
      return;
    }
  }
  if (pointwise_cublas(s, dx.dtype())) {
    pointwise_backward_data(s, dy, w, dx);
    return;
  }
  cudnn_backward_data(s, dy, w, dx);
}

void conv2d_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                            Tensor* db) {
  check_device("conv2d backward-filter", {&x, &dy, &dw, db});
  if (db)
    DSC_CHECK(db->numel() == s.k && db->dtype() == dy.dtype(),
              "conv2d backward-filter: bias gradient ", db->str(), " for ", s.k,
              " output channels of ", dy.str());
  if (dy.numel() == 0 || x.numel() == 0) {  // empty batch: the gradients are zero
    fill(dw, 0.0);
    if (db) fill(*db, 0.0);
    return;
  }
  if (s.depthwise()) {
    const Depthwise impl = kernel_options().depthwise;
    if (impl != Depthwise::Cudnn) {
      depthwise_backward_filter(s, x, dy, dw, db, impl == Depthwise::Naive);
      return;
    }
  }
  if (pointwise_cublas(s, x.dtype())) {
    pointwise_backward_filter(s, x, dy, dw);
  } else {
    cudnn_backward_filter(s, x, dy, dw);
  }
  if (db) channel_sum(dy, s.k, int64_t(s.p()) * s.q(), *db);
}

void conv2d_backward(const ConvShape& s, const Tensor& x, const Tensor& dy, const Tensor& w,
                     Tensor* dx, Tensor& dw, Tensor* db) {
  check_device("conv2d backward", {&x, &dy, &w, dx, &dw, db});
  if (s.depthwise() && kernel_options().depthwise == Depthwise::Own &&
      depthwise_backward_both(s, x, dy, w, dx, dw, db))
    return;
  if (dx) conv2d_backward_data(s, dy, w, *dx);
  conv2d_backward_filter(s, x, dy, dw, db);
}

std::vector<std::string> algorithm_report() {
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  std::vector<std::string> lines;
  for (const auto& [key, plan] : cache.plans) {
    const std::pair<const char*, const Choice*> dirs[] = {{"forward", &plan->fwd},
                                                          {"backward-data", &plan->bwd_data},
                                                          {"backward-filter", &plan->bwd_filter}};
    for (const auto& [dir, c] : dirs) {
      if (!current(*c)) continue;
      std::string line = detail::cat(
          "cuDNN ", dir, " ", shape_text(plan->shape, plan->dtype), ": ", algo_name(dir, c->algo),
          " (", c->algo, "), ", math_name(c->math), " math, workspace ", c->workspace, " bytes, ",
          c->deterministic ? "deterministic" : "non-deterministic");
      if (c->ms >= 0) line += detail::cat(", ", c->ms, " ms measured");
      if (c->measured_math != c->math)
        line += detail::cat(" (measured with ", math_name(c->measured_math), " math)");
      lines.push_back(line);
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace dsc::cuda
