// The CUDA backend's table entries (see core/backend.h for each contract) and the helpers that
// several .cu files share. register_cuda_kernels (backend_cuda.cu) puts these into the table.
//
// Where each entry lives:
//   elementwise.cu    fill, cast, axpy, scale, mul, sum, check_finite, relu, bias add / bias grad
//   max_pool2d.cu     max_pool2d forward / backward
//   conv2d.cu         conv2d_* (cuDNN for groups == 1 and, with depthwise=cudnn, depthwise)
//   pointwise.cu      1x1 convolutions as cuBLAS GEMMs (unless pointwise=cudnn)
//   depthwise.cu      own depthwise kernels (groups == C)
//   depsep_conv2d.cu  depsep_conv2d_forward (one fused kernel) / backward (composed)
//   linear.cu         linear forward / backward (cuBLAS)
//   batch_norm.cu     batch_norm train / eval / backward
//   cross_entropy.cu  softmax cross-entropy forward / backward, count_correct
//   optimizer.cu      adam_step, sgd_step, update_loss_scale
#pragma once

#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/conv2d.h"
#include "core/cpu/depsep_conv2d.h"
#include "core/tensor.h"

namespace dsc::cuda {

// ---- elementwise ----
void fill(Tensor& t, double value);
void broadcast(const Tensor& value, Tensor& t);
void cast(const Tensor& src, Tensor& dst);
void axpy(const Tensor& x, double alpha, Tensor& y);
void scale(Tensor& t, double alpha);
void mul(const Tensor& a, const Tensor& b, Tensor& out);
void sum(const Tensor& x, Tensor& out);
void check_finite(const Tensor& x, Tensor& found_inf);
void relu_forward(const Tensor& x, Tensor& y);
void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx);
// y[outer, k, inner] += b[k] for y of shape [outer, K, inner...] (conv: inner = P*Q; linear: 1).
void add_channel_bias(Tensor& y, const Tensor& b, int k, int64_t inner);
// db[k] = sum over outer and inner of dy[outer, k, inner] (accumulated in double).
void channel_sum(const Tensor& dy, int k, int64_t inner, Tensor& db);

// ---- pooling ----
void max_pool2d_forward(const Tensor& x, int k, int st, Tensor& y);
void max_pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, int k, int st,
                         Tensor& dx);

// ---- convolution ----
void conv2d_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                    Tensor& y);
void conv2d_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx);
void conv2d_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                            Tensor* db);
// Both (dx may be null): the depthwise one-pass kernel where it applies, else the two above.
void conv2d_backward(const ConvShape& s, const Tensor& x, const Tensor& dy, const Tensor& w,
                     Tensor* dx, Tensor& dw, Tensor* db);
// The cuDNN algorithms chosen so far under the current kernel options, one line per shape and
// direction (the table's algorithm_report).
std::vector<std::string> algorithm_report();

// 1x1, stride 1, no padding, groups 1: strided-batched cuBLAS GEMMs (no bias; the callers add it).
bool pointwise_shape(const ConvShape& s);
void pointwise_forward(const ConvShape& s, const Tensor& x, const Tensor& w, Tensor& y);
void pointwise_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx);
void pointwise_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw);

// Own depthwise kernels (groups == C == K); `naive` selects the plain one-thread-per-output
// versions (the kernel option depthwise=naive) instead of the shared-memory tiled ones.
void depthwise_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                       Tensor& y, bool naive);
void depthwise_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx,
                             bool naive);
void depthwise_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                               Tensor* db, bool naive);
// Both gradients from one pass over dy (tiled; stride 1, pad < R and < S); returns false, having
// done nothing, for shapes it does not cover.
bool depthwise_backward_both(const ConvShape& s, const Tensor& x, const Tensor& dy, const Tensor& w,
                             Tensor* dx, Tensor& dw, Tensor* db);

// ---- fused depthwise-separable convolution (depsep=fused, the default, or composed) ----
void depsep_conv2d_forward(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                           const Tensor& wp, const Tensor* b, Tensor& y);
void depsep_conv2d_backward(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                            const Tensor& wp, const Tensor& y, const Tensor& dy, Tensor* dx,
                            Tensor& dwd, Tensor& dwp, Tensor* db);

// ---- linear ----
void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y);
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                     Tensor* db);

// ---- batch norm ----
void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const BatchNormParams& p, Tensor& running_mean, Tensor& running_var,
                              Tensor& y, Tensor& save_mean, Tensor& save_invstd);
void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var,
                             const BatchNormParams& p, Tensor& y);
void batch_norm_backward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                         const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta);

// ---- loss ----
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs);
void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& dloss,
                            Tensor& dlogits);
void count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct);

// ---- optimizers ----
void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamParams& p);
void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const SgdParams& p);
void update_loss_scale(Tensor& state, const Tensor& found_inf, const LossScaleParams& p);

// A kernel whose attributes register_cuda_kernels queries to detect a missing kernel image.
const void* probe_kernel();

}  // namespace dsc::cuda
