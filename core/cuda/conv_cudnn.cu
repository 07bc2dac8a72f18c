// conv2d on the GPU: the three table entries and their dispatch. Layouts as in core/ops/conv2d.h:
// x [N, C, H, W], w [K, C/groups, R, S], bias [K], y [N, K, P, Q], NCHW, zero padding, no dilation.
//
// groups == 1 (and depthwise with DSC_DEPTHWISE=cudnn, as cuDNN's grouped convolution): cuDNN's
// convolution API with NCHW descriptors, f32 or f16 data and f32 compute. Math type: FMA only for
// f32 (no TF32, so f32 results match the CPU backend to ~1e-6), tensor cores for f16. Per
// (shape, dtype) a plan keeps the descriptors and, per direction, the algorithm chosen on first use
// by cudnnFind*AlgorithmEx (benchmarks on the call's own buffers; DSC_CUDNN_FIND=0: the
// cudnnGet*_v7 heuristics instead) with at most DSC_CUDNN_WORKSPACE_MB (default 512) of workspace.
// The workspace comes from runtime.h's grown-and-reused buffer. Bias: y += b[k] by our own kernel;
// the bias gradient is a per-channel reduction kernel (elementwise.cu).
// depthwise (groups == C): our own kernels (depthwise.cu) unless DSC_DEPTHWISE=cudnn.
// f64 convolutions are CPU-only except through the own depthwise kernels and the cuBLAS
// pointwise path (pointwise.cu).
// Tested against the CPU backend in tests/cuda/test_cuda_conv.cpp.
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

// ---- settings -----------------------------------------------------------------------------------

enum class DepthwiseImpl { Own, Naive, Cudnn };

// Read on every call (getenv is cheap next to a convolution), so tests can switch implementations.
DepthwiseImpl depthwise_impl() {
  const char* v = std::getenv("DSC_DEPTHWISE");
  if (v == nullptr || v[0] == '\0' || std::strcmp(v, "own") == 0) return DepthwiseImpl::Own;
  if (std::strcmp(v, "naive") == 0) return DepthwiseImpl::Naive;
  if (std::strcmp(v, "cudnn") == 0) return DepthwiseImpl::Cudnn;
  throw Error(detail::cat("DSC_DEPTHWISE=", v, ": expected own (default), naive or cudnn"));
}

// Pointwise (1x1) convolutions: cuBLAS GEMMs (pointwise.cu, default) or cuDNN; always cuBLAS in
// f64, which cuDNN's convolutions refuse. Read on every call.
bool pointwise_cublas(const ConvShape& s, DType t) {
  if (!pointwise_shape(s)) return false;
  const char* v = std::getenv("DSC_POINTWISE");
  if (v == nullptr || v[0] == '\0' || std::strcmp(v, "cublas") == 0) return true;
  if (std::strcmp(v, "cudnn") == 0) return t == DType::F64;
  throw Error(detail::cat("DSC_POINTWISE=", v, ": expected cublas (default) or cudnn"));
}

bool use_find() {
  const char* v = std::getenv("DSC_CUDNN_FIND");
  return !(v != nullptr && std::strcmp(v, "0") == 0);
}

size_t search_workspace_limit() {
  size_t mb = 512;
  if (const char* v = std::getenv("DSC_CUDNN_WORKSPACE_MB")) mb = std::strtoull(v, nullptr, 10);
  size_t limit = mb << 20;
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
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

struct ConvPlan {
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

cudnnMathType_t search_math(cudnnDataType_t dt) {
  return dt == CUDNN_DATA_HALF ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

ConvPlan& plan_for(const ConvShape& s, DType dtype) {
  static std::mutex mu;
  static auto* plans = new std::unordered_map<ConvKey, std::unique_ptr<ConvPlan>, ConvKeyHash>;
  const ConvKey key{s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad, s.groups, dtype};
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans->find(key);
  if (it != plans->end()) return *it->second;
  auto p = std::make_unique<ConvPlan>();
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
  plans->emplace(key, std::move(p));
  return ref;
}

// First successful result that fits the workspace limit. f32 keeps FMA math whatever the result
// reports (never TF32); f16 runs with the math type the result was measured with.
template <class Perf> Choice pick(const Perf* perf, int returned, size_t limit, cudnnDataType_t dt,
                                  const char* what, const ConvShape& s, DType t) {
  for (int i = 0; i < returned; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit) continue;
    if (dt == CUDNN_DATA_FLOAT && (perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
                                   perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    Choice c;
    c.ready = true;
    c.algo = static_cast<int>(perf[i].algo);
    c.workspace = perf[i].memory;
    c.math = dt == CUDNN_DATA_HALF ? perf[i].mathType : CUDNN_FMA_MATH;
    return c;
  }
  throw Error(detail::cat("conv2d ", what, ": cuDNN offers no usable algorithm for ",
                          shape_text(s, t), " (", returned, " candidates, workspace limit ",
                          limit >> 20, " MiB; try DSC_CUDNN_WORKSPACE_MB or DSC_CUDNN_FIND=0)"));
}

// Asks the heuristics (`get`) for every algorithm and its workspace, then, unless DSC_CUDNN_FIND=0,
// benchmarks them (`find`) with a workspace as large as the largest candidate needs (capped by
// DSC_CUDNN_WORKSPACE_MB and half the free memory), and picks the fastest usable one.
template <class Perf, class Find, class Get>
Choice search(ConvPlan& p, const char* what, const ConvShape& s, DType t, Find&& find, Get&& get) {
  DSC_CHECK(!capturing(), "conv2d ", what, ": choosing cuDNN's algorithm for ", shape_text(s, t),
            " inside a captured step graph (run the step once without capturing first)");
  DSC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math(p.dt)));
  Perf perf[16];
  int returned = 0;
  get(perf, &returned);
  size_t limit = search_workspace_limit();
  if (!use_find()) return pick(perf, returned, limit, p.dt, what, s, t);
  size_t largest = 0;
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit)
      largest = std::max(largest, perf[i].memory);
  limit = largest;
  void* ws = nullptr;
  try {
    ws = limit ? workspace(limit) : nullptr;
  } catch (const Error&) {  // out of memory: search among the algorithms that need none
    limit = 0;
  }
  returned = 0;
  find(perf, &returned, ws, limit);
  return pick(perf, returned, limit, p.dt, what, s, t);
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
  if (!p.fwd.ready) {
    p.fwd = search<cudnnConvolutionFwdAlgoPerf_t>(
        p, "forward", s, x.dtype(),
        [&](cudnnConvolutionFwdAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
              h, p.x, x.raw(), p.w, w.raw(), p.conv, p.y, y.raw(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
              n, perf, ws, bytes));
        },
        [&](cudnnConvolutionFwdAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
              h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, n, perf));
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
  if (!p.bwd_data.ready) {
    p.bwd_data = search<cudnnConvolutionBwdDataAlgoPerf_t>(
        p, "backward-data", s, dx.dtype(),
        [&](cudnnConvolutionBwdDataAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
              h, p.w, w.raw(), p.y, dy.raw(), p.conv, p.x, dx.raw(),
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, perf, ws, bytes));
        },
        [&](cudnnConvolutionBwdDataAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
              h, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, perf));
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
  if (!p.bwd_filter.ready) {
    p.bwd_filter = search<cudnnConvolutionBwdFilterAlgoPerf_t>(
        p, "backward-filter", s, x.dtype(),
        [&](cudnnConvolutionBwdFilterAlgoPerf_t* perf, int* n, void* ws, size_t bytes) {
          DSC_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
              h, p.x, x.raw(), p.y, dy.raw(), p.conv, p.w, dw.raw(),
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, perf, ws, bytes));
        },
        [&](cudnnConvolutionBwdFilterAlgoPerf_t* perf, int* n) {
          DSC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
              h, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, perf));
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
    const DepthwiseImpl impl = depthwise_impl();
    if (impl != DepthwiseImpl::Cudnn) {
      depthwise_forward(s, x, w, b, y, impl == DepthwiseImpl::Naive);
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
    const DepthwiseImpl impl = depthwise_impl();
    if (impl != DepthwiseImpl::Cudnn) {
      depthwise_backward_data(s, dy, w, dx, impl == DepthwiseImpl::Naive);
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
    const DepthwiseImpl impl = depthwise_impl();
    if (impl != DepthwiseImpl::Cudnn) {
      depthwise_backward_filter(s, x, dy, dw, db, impl == DepthwiseImpl::Naive);
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
  if (s.depthwise() && depthwise_impl() == DepthwiseImpl::Own &&
      depthwise_backward_both(s, x, dy, w, dx, dw, db))
    return;
  if (dx) conv2d_backward_data(s, dy, w, *dx);
  conv2d_backward_filter(s, x, dy, dw, db);
}

}  // namespace dsc::cuda
