// Linear layer on the GPU through cuBLAS: x [N, I], w [O, I], b [O], y [N, O], all row-major.
// cuBLAS is column-major, and a row-major [r, c] matrix is the column-major [c, r] matrix of its
// transpose, so each row-major product is issued transposed:
//   y  = x w^T   ->  y^T [O, N]  = (w^T)^T x^T   : gemm(T, N, m=O, n=N, k=I, A=w (ld I), B=x (ld
//   I)) dx = dy w    ->  dx^T [I, N] = w^T dy^T      : gemm(N, N, m=I, n=N, k=O, A=w (ld I), B=dy
//   (ld O)) dw = dy^T x  ->  dw^T [I, O] = x^T dy        : gemm(N, T, m=I, n=O, k=N, A=x (ld I),
//   B=dy (ld O))
// cublasGemmEx with CUBLAS_COMPUTE_32F for f32 (pure FP32, no TF32) and f16 (f16 inputs and
// outputs on tensor cores, f32 accumulation), CUBLAS_COMPUTE_64F for f64. The bias is added and its
// gradient reduced by the per-channel kernels of elementwise.cu (inner = 1).
// Tested against the CPU backend in tests/cuda/test_cuda_kernels.cpp.
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

struct GemmTypes {
  cudaDataType_t data;
  cublasComputeType_t compute;
};

GemmTypes gemm_types(DType t, const char* op) {
  switch (t) {
    case DType::F32: return {CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case DType::F16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F};
    case DType::F64: return {CUDA_R_64F, CUBLAS_COMPUTE_64F};
    default: throw Error(detail::cat(op, " on cuda: unsupported dtype ", dtype_name(t)));
  }
}

// Column-major C [m, n] = op(A) op(B) (beta = 0), all of dtype t.
void gemm(DType t, const char* op, bool trans_a, bool trans_b, int m, int n, int k, const void* a,
          int lda, const void* b, int ldb, void* c, int ldc) {
  const GemmTypes g = gemm_types(t, op);
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool f64 = t == DType::F64;
  DSC_CUBLAS_CHECK(cublasGemmEx(cublas_handle(), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                                f64 ? static_cast<const void*>(&one_d) : &one_f, a, g.data, lda, b,
                                g.data, ldb, f64 ? static_cast<const void*>(&zero_d) : &zero_f, c,
                                g.data, ldc, g.compute, CUBLAS_GEMM_DEFAULT));
  if (sync_after_launch()) synchronize();
}

void check_linear(const char* op, const Tensor& x, const Tensor& w, const Tensor& y) {
  DSC_CHECK(x.ndim() == 2 && w.ndim() == 2 && y.ndim() == 2 && x.dim(1) == w.dim(1) &&
                y.dim(0) == x.dim(0) && y.dim(1) == w.dim(0),
            op, ": shapes ", x.str(), ", ", w.str(), ", ", y.str(),
            " (expected x [N, I], w [O, I], y [N, O])");
  DSC_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), op, ": dtypes differ: ", x.str(),
            ", ", w.str(), ", ", y.str());
  for (const Tensor* t : {&x, &w, &y})
    DSC_CHECK(t->device() == Device::CUDA, op, ": tensor ", t->str(), " is not on cuda");
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  check_linear("linear forward", x, w, y);
  const int n = int(x.dim(0)), in = int(x.dim(1)), out = int(w.dim(0));
  if (y.numel() == 0) return;
  if (in == 0) {
    fill(y, 0.0);
  } else {
    gemm(x.dtype(), "linear forward", true, false, out, n, in, w.raw(), in, x.raw(), in, y.raw(),
         out);
  }
  if (b) add_channel_bias(y, *b, out, 1);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                     Tensor* db) {
  check_linear("linear backward", x, w, dy);
  const int n = int(x.dim(0)), in = int(x.dim(1)), out = int(w.dim(0));
  DSC_CHECK(dw.numel() == w.numel() && dw.dtype() == w.dtype(), "linear backward: dw ", dw.str(),
            " for w ", w.str());
  if (dx)
    DSC_CHECK(dx->numel() == x.numel() && dx->dtype() == x.dtype(), "linear backward: dx ",
              dx->str(), " for x ", x.str());
  if (n == 0) {  // empty batch: zero gradients
    fill(dw, 0.0);
    if (db) fill(*db, 0.0);
    return;
  }
  if (dx && dx->numel() > 0) {
    if (out == 0) {
      fill(*dx, 0.0);
    } else {
      gemm(x.dtype(), "linear backward (dx)", false, false, in, n, out, w.raw(), in, dy.raw(), out,
           dx->raw(), in);
    }
  }
  if (dw.numel() > 0)
    gemm(x.dtype(), "linear backward (dw)", false, true, in, out, n, x.raw(), in, dy.raw(), out,
         dw.raw(), in);
  if (db) channel_sum(dy, out, 1, *db);
}

}  // namespace dsc::cuda
