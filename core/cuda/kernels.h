// The CUDA backend's kernel-table entries, declared from the list (core/kernel_list.h): each entry
// is the function dsc::cuda::<entry>, defined in the .cu file of its op (the list's sections name
// it) and registered by register_cuda_kernels (backend_cuda.cu); plus the helpers that several .cu
// files share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace dsc::cuda {

// ---- the table entries ----
#define DSC_KERNEL(name, ret, params, need) ret name params;
#include "core/kernel_list.h"

// ---- bias add and bias gradient (elementwise.cu; used by conv2d and linear) ----
// y[outer, k, inner] += b[k] for y of shape [outer, K, inner...] (conv: inner = P*Q; linear: 1).
void add_channel_bias(Tensor& y, const Tensor& b, int k, int64_t inner);
// db[k] = sum over outer and inner of dy[outer, k, inner] (accumulated in double).
void channel_sum(const Tensor& dy, int k, int64_t inner, Tensor& db);

// ---- the parts of conv2d (conv2d.cu dispatches between them) ----
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

// A kernel whose attributes register_cuda_kernels queries to detect a missing kernel image.
const void* probe_kernel();

}  // namespace dsc::cuda
