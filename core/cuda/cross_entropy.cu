// Softmax cross-entropy on the GPU, with the arithmetic of core/cpu/cross_entropy_cpu.cpp:
// logits [N, M] row-major (f32, f16 or f64), labels i32 [N]. Forward: one warp per row computes the
// row maximum, sum of exp(l - max) and log-sum-exp in double, writes probs (logits' dtype) and the
// row's loss; a single block then adds the N row losses in a fixed order and writes the mean into
// `loss` (one f32 element, f64 for f64 logits). Backward: dlogits = dloss * (probs - onehot) / N,
// with dloss read on the device (no host synchronisation). count_correct: one thread per row,
// first maximum wins (as on the CPU), added to its output with an integer atomic.
// A label outside [0, M) cannot be reported without synchronising, so it makes that row's loss NaN
// (and its gradient row NaN), which the training loop's finite checks then catch.
// Tested against the CPU backend in tests/cuda/test_cuda_kernels.cpp.
#include <cmath>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row

template <class T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int32_t* labels, int n, int m,
                                             T* probs, double* row_loss) {
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= n) return;  // whole warps leave together
  const T* r = logits + int64_t(row) * m;
  double mx = -INFINITY;
  for (int j = lane; j < m; j += 32) {
    const double v = to_acc(r[j]);
    mx = v > mx ? v : mx;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const double o = __shfl_xor_sync(0xffffffffu, mx, off);
    mx = o > mx ? o : mx;
  }
  double z = 0;
  for (int j = lane; j < m; j += 32) z += exp(static_cast<double>(to_acc(r[j])) - mx);
  for (int off = 16; off > 0; off >>= 1) z += __shfl_xor_sync(0xffffffffu, z, off);
  const double log_z = log(z) + mx;
  T* pr = probs + int64_t(row) * m;
  for (int j = lane; j < m; j += 32)
    pr[j] = cast_to<T>(exp(static_cast<double>(to_acc(r[j])) - log_z));
  if (lane == 0) {
    const int label = labels[row];
    row_loss[row] = (label >= 0 && label < m) ? log_z - static_cast<double>(to_acc(r[label])) : NAN;
  }
}

template <class O>
__global__ void cross_entropy_mean_kernel(const double* row_loss, int n, O* loss) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += row_loss[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) loss[0] = cast_to<O>(acc / n);
}

__device__ double load_scalar(const void* p, DType t) {
  switch (t) {
    case DType::F16:
      return __half2float(*static_cast<const __half*>(p));
    case DType::F64:
      return *static_cast<const double*>(p);
    default:
      return *static_cast<const float*>(p);
  }
}

template <class T>
__global__ void cross_entropy_backward_kernel(const T* probs, const int32_t* labels, int n, int m,
                                              const void* dloss, DType dloss_type, T* dlogits) {
  const double k = load_scalar(dloss, dloss_type) / n;
  const int64_t total = int64_t(n) * m;
  DSC_GRID_STRIDE(i, total) {
    const int row = static_cast<int>(i / m), j = static_cast<int>(i % m);
    const int label = labels[row];
    const double p = to_acc(probs[i]);
    const double g = (label >= 0 && label < m) ? k * (p - (j == label ? 1.0 : 0.0)) : NAN;
    dlogits[i] = cast_to<T>(g);
  }
}

template <class T>
__global__ void count_correct_kernel(const T* logits, const int32_t* labels, int n, int m,
                                     int32_t* correct) {
  DSC_GRID_STRIDE(row, n) {
    const T* r = logits + row * m;
    int best = 0;
    auto best_v = to_acc(r[0]);
    for (int j = 1; j < m; ++j) {
      const auto v = to_acc(r[j]);
      if (v > best_v) {
        best = j;
        best_v = v;
      }
    }
    if (best == labels[row]) atomicAdd(correct, 1);
  }
}

void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& labels) {
  DSC_CHECK(logits.ndim() == 2 && labels.numel() == logits.dim(0) && labels.dtype() == DType::I32,
            op, ": logits ", logits.str(), " and labels ", labels.str(),
            " (expected [N, M] and i32 [N])");
  DSC_CHECK(logits.dim(1) > 0, op, ": no classes in ", logits.str());
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                           Tensor& probs) {
  check_cross_entropy("cross_entropy", logits, labels);
  same_numel("cross_entropy", logits, probs);
  DSC_CHECK(loss.numel() == 1, "cross_entropy: loss must have one element, got ", loss.str());
  const int n = int(logits.dim(0)), m = int(logits.dim(1));
  DeviceBuffer row_loss(sizeof(double) * std::max(n, 1));
  if (n > 0) {
    dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const unsigned blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
      launch(cross_entropy_forward_kernel<T>, blocks, 32 * kRowsPerBlock)(
          dptr<T>(logits), dptr<int32_t>(labels), n, m, dptr<T>(probs), row_loss.as<double>());
    });
  }
  dispatch_float(loss.dtype(), "cross_entropy", [&](auto tag) {
    using O = typename decltype(tag)::type;
    launch(cross_entropy_mean_kernel<O>, 1, kThreads)(row_loss.as<double>(), n, dptr<O>(loss));
  });
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& dloss,
                            Tensor& dlogits) {
  check_cross_entropy("cross_entropy backward", probs, labels);
  same_numel("cross_entropy backward", probs, dlogits);
  DSC_CHECK(dloss.numel() == 1 && dloss.device() == Device::CUDA &&
                (dloss.dtype() == DType::F32 || dloss.dtype() == DType::F16 ||
                 dloss.dtype() == DType::F64),
            "cross_entropy backward: dloss must be one float element on cuda, got ", dloss.str());
  const int n = int(probs.dim(0)), m = int(probs.dim(1));
  if (n == 0) return;
  dispatch_float(probs.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(cross_entropy_backward_kernel<T>, grid_for(int64_t(n) * m), kThreads)(
        dptr<T>(probs), dptr<int32_t>(labels), n, m, dloss.raw(), dloss.dtype(), dptr<T>(dlogits));
  });
}

void count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct) {
  check_cross_entropy("count_correct", logits, labels);
  DSC_CHECK(correct.numel() == 1, "count_correct: output must be one i32, got ", correct.str());
  int32_t* out = dptr<int32_t>(correct);  // accumulated into (see core/backend.h)
  const int n = int(logits.dim(0)), m = int(logits.dim(1));
  if (n == 0) return;
  dispatch_float(logits.dtype(), "count_correct", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(count_correct_kernel<T>, grid_for(n), kThreads)(dptr<T>(logits), dptr<int32_t>(labels),
                                                           n, m, out);
  });
}

}  // namespace dsc::cuda
