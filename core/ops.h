// Differentiable ops: each checks its inputs (shape errors name the op and both shapes), allocates
// its output on the inputs' device, runs the device's kernels (core/backend.h) and, when an input
// requires grad, records a Node with what its backward needs. Layouts as in tensor.h (NCHW, KCRS).
//
// Mixed precision: the ops that take parameters (conv2d, depsep_conv2d, linear: weights and bias;
// add and mul: either operand) accept f32 parameters with an f16 input and compute in f16 with the
// parameters' f16 view (compute_view, core/mixed_precision.h), so their gradients arrive in f32.
// Every other dtype mismatch is an error. Ops written outside the library: core/function.h.
#pragma once

#include "core/tensor.h"

namespace dsc::ops {

// x [N, C, H, W], w [K, C/groups, R, S], b [K] or undefined; groups is 1 or C (depthwise).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad,
              int groups = 1);
// Depthwise-separable convolution, Keras' SeparableConv2D: y = act(conv2d(conv2d(x, wd, {},
// stride, pad, C), wp, b)) with wd [C, 1, R, S] (no bias), wp [K, C, 1, 1], b [K] or undefined,
// act = ReLU if relu. Fused where the device has depsep kernels (the CPU: the depthwise output
// never leaves the cache); elsewhere composed of those three ops, with the same result.
Tensor depsep_conv2d(const Tensor& x, const Tensor& wd, const Tensor& wp, const Tensor& b,
                     int stride, int pad, bool relu);
// x [N, I], w [O, I], b [O] or undefined -> [N, O].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor relu(const Tensor& x);
// k x k windows with stride st, no padding.
Tensor max_pool2d(const Tensor& x, int k, int st);
// x [N, C, H, W] -> [N, C]: the mean of each channel's H x W plane (H, W >= 1).
Tensor global_avg_pool2d(const Tensor& x);
// Per-channel batch norm of x [N, C, H, W]; gamma/beta/running stats [C] (f32, f64 for checks).
// training: batch statistics, running stats updated in place; otherwise running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps);
// Mean softmax cross-entropy of logits [N, M] against i32 labels [N]: a one-element tensor.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// Same data, new shape (gradient reshaped back).
Tensor reshape(const Tensor& x, const Shape& shape);
// Elementwise a + b and a * b (same shape), and x * alpha.
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
// Sum of all elements: a one-element tensor (f32 for f16 input).
Tensor sum(const Tensor& x);
// Differentiable dtype conversion (the gradient is converted back).
Tensor cast(const Tensor& x, DType dtype);
// The same conversion already computed: `converted` holds x's values in another dtype (e.g. a
// view of one cast of many tensors at once). Returns it with cast's gradient rule; no kernel runs.
Tensor cast_computed(const Tensor& x, const Tensor& converted);

// Not differentiable: number of rows of logits [N, M] whose argmax equals the label.
int64_t count_correct(const Tensor& logits, const Tensor& labels);

}  // namespace dsc::ops
