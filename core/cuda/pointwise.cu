// Pointwise (1x1, stride 1, no padding, groups 1) convolution on the GPU as cuBLAS GEMMs, the
// default for such shapes (the kernel option pointwise=cudnn sends them to cuDNN like any other
// convolution).
// NCHW: x [N, C, HW], w [K, C], y [N, K, HW]; per image n, row-major,
//   y_n = w x_n,   dx_n = w^T dy_n,   dw = sum_n dy_n x_n^T.
// cuBLAS is column-major (a row-major [r, c] matrix is the column-major [c, r] matrix of its
// transpose), so each product is issued transposed, batched over the images with a stride:
//   y_n^T  [HW, K] = x_n^T [HW, C] w^T [C, K]  : gemm(N, N, m=HW, n=K, k=C, A=x_n, B=w (ld C))
//   dx_n^T [HW, C] = dy_n^T [HW, K] w [K, C]   : gemm(N, T, m=HW, n=C, k=K, A=dy_n, B=w (ld C))
//   P_n    [C, K]  = x_n [C, HW] dy_n^T [HW, K]: gemm(T, N, m=C, n=K, k=HW, A=x_n, B=dy_n)
// The weight gradient's per-image products P_n (column-major [C, K] = row-major dw [K, C]) are
// written in the accumulation type (f32 for f16 inputs, on tensor cores) to a scratch buffer, a
// chunk of images at a time, and summed by a kernel. f32 stays pure FP32 (CUBLAS_COMPUTE_32F, no
// TF32), f64 computes in f64. The bias is added / reduced by elementwise.cu's per-channel kernels.
// Tested against the CPU backend through the conv2d entries in tests/cuda/test_cuda_conv2d.cpp.
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"
#include "core/kernel_options.h"

namespace dsc::cuda {
namespace {

// Scratch for the weight gradient's per-image partials: the kernel options' pointwise_scratch_mb
// (default 64; small values force several chunks, which the tests use).
size_t partial_bytes() { return size_t(kernel_options().pointwise_scratch_mb) << 20; }

void check_pointwise(const char* op, const ConvShape& s, const Tensor& x, const Tensor& w,
                     const Tensor& y) {
  DSC_CHECK(pointwise_shape(s) && x.numel() == s.x_numel() && w.numel() == s.w_numel() &&
                y.numel() == s.y_numel(),
            op, ": tensors ", x.str(), ", ", w.str(), ", ", y.str(),
            " do not fit a 1x1 convolution of N ", s.n, ", C ", s.c, ", K ", s.k);
  DSC_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), op, ": dtypes differ: ", x.str(),
            ", ", w.str(), ", ", y.str());
}

struct GemmTypes {
  cudaDataType_t data, acc;
  cublasComputeType_t compute;
};

GemmTypes gemm_types(DType t) {
  switch (t) {
    case DType::F32: return {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case DType::F16: return {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case DType::F64: return {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F};
    default:
      throw Error(detail::cat("pointwise conv2d on cuda: unsupported dtype ", dtype_name(t),
                              " (expected f32, f16 or f64)"));
  }
}

// Column-major C_i = op(A_i) op(B_i) for i < batch (beta = 0); A and B of dtype t, C of type c_type.
void gemm_batched(DType t, cudaDataType_t c_type, bool trans_a, bool trans_b, int m, int n, int k,
                  const void* a, int lda, long long stride_a, const void* b, int ldb,
                  long long stride_b, void* c, int ldc, long long stride_c, int batch) {
  const GemmTypes g = gemm_types(t);
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool f64 = t == DType::F64;
  DSC_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_handle(), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m,
      n, k, f64 ? static_cast<const void*>(&one_d) : &one_f, a, g.data, lda, stride_a, b, g.data,
      ldb, stride_b, f64 ? static_cast<const void*>(&zero_d) : &zero_f, c, c_type, ldc, stride_c,
      batch, g.compute, CUBLAS_GEMM_DEFAULT));
  if (sync_after_launch()) synchronize();
}

// With column_sum over one chunk's partials [nb][n]: acc[i] (+)= the chunk's sum; on the last
// chunk the total goes to out instead.
template <class T, class A> struct ChunkSumOut {
  A* acc;
  bool first;
  T* out;
  __device__ void operator()(int64_t i, A sum) const {
    if (!first) sum += acc[i];
    if (out) {
      out[i] = cast_to<T>(sum);
    } else {
      acc[i] = sum;
    }
  }
};

}  // namespace

bool pointwise_shape(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.stride == 1 && s.pad == 0 && s.groups == 1;
}

void pointwise_forward(const ConvShape& s, const Tensor& x, const Tensor& w, Tensor& y) {
  check_pointwise("pointwise conv2d forward", s, x, w, y);
  const int hw = s.h * s.w;
  gemm_batched(x.dtype(), gemm_types(x.dtype()).data, false, false, hw, s.k, s.c, x.raw(), hw,
               (long long)s.c * hw, w.raw(), s.c, 0, y.raw(), hw, (long long)s.k * hw, s.n);
}

void pointwise_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  check_pointwise("pointwise conv2d backward-data", s, dx, w, dy);
  const int hw = s.h * s.w;
  gemm_batched(dy.dtype(), gemm_types(dy.dtype()).data, false, true, hw, s.c, s.k, dy.raw(), hw,
               (long long)s.k * hw, w.raw(), s.c, 0, dx.raw(), hw, (long long)s.c * hw, s.n);
}

void pointwise_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy,
                               Tensor& dw) {
  check_pointwise("pointwise conv2d backward-filter", s, x, dw, dy);
  const int hw = s.h * s.w;
  const int64_t kc = int64_t(s.k) * s.c;
  dispatch_float(x.dtype(), "pointwise conv2d backward-filter", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    // Images per chunk: as many partials as fit the scratch budget (at least one).
    const int chunk = int(std::max<int64_t>(
        1, std::min<int64_t>(s.n, int64_t(partial_bytes() / (size_t(kc) * sizeof(A))))));
    DeviceBuffer part(size_t(chunk) * kc * sizeof(A));
    DeviceBuffer acc(chunk < s.n ? size_t(kc) * sizeof(A) : 0);
    const size_t x_image = size_t(s.c) * hw * sizeof(T), dy_image = size_t(s.k) * hw * sizeof(T);
    for (int n0 = 0; n0 < s.n; n0 += chunk) {
      const int nb = std::min(chunk, s.n - n0);
      gemm_batched(x.dtype(), gemm_types(x.dtype()).acc, true, false, s.c, s.k, hw,
                   static_cast<const char*>(x.raw()) + n0 * x_image, hw, (long long)s.c * hw,
                   static_cast<const char*>(dy.raw()) + n0 * dy_image, hw, (long long)s.k * hw,
                   part.get(), s.c, kc, nb);
      const bool last = n0 + nb == s.n;
      column_sum(part.as<A>(), nb, kc,
                 ChunkSumOut<T, A>{acc.as<A>(), n0 == 0, last ? dptr<T>(dw) : nullptr},
                 "pointwise backward-filter column_sum_kernel");
    }
  });
}

}  // namespace dsc::cuda
