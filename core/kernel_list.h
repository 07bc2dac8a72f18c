// The kernel table's entries: the ONE list from which the KernelTable struct (core/backend.h), each
// backend's declarations and registration (core/cpu/kernels.h + core/backend_cpu.cpp,
// core/cuda/kernels.h + core/cuda/backend_cuda.cu) and the per-entry checks of the tests
// (tests/core/test_kernel_list.cpp, tests/cuda/test_cuda_runtime.cpp) are generated. It is the
// table's documentation: each entry's contract is the comment above it, and each section names the
// op and the files that implement it (core/cpu/<op>_cpu.cpp, core/cuda/<op>.cu).
//
// Format, one line per entry:
//   DSC_KERNEL(name, return type, (parameter list), required | optional)
// A backend implements an entry as the function of the entry's name in its namespace
// (dsc::cpu::fill, dsc::cuda::fill); its registration sets every entry to that function except the
// optional entries it does not provide (backend_provides() in core/backend.h). Registration fails,
// naming the backend and the entry, when a required entry is left null (register_backend() in
// core/backend.h). Entries are named <op>_<direction> after the differentiable op of core/ops.h
// that calls them.
//
// Conventions for every entry: tensors are contiguous, outputs are preallocated by the caller and
// are OVERWRITTEN (gradients accumulate above this level), all tensors of one call live on the
// table's device, and floating tensors of one call share a dtype unless an entry says otherwise.
// Optional arguments are passed as pointers (null = absent).
//
// No include guard: every user defines DSC_KERNEL(name, ret, params, need), includes this file, and
// gets DSC_KERNEL undefined again at its end.
// clang-format off

#ifndef DSC_KERNEL
#error "define DSC_KERNEL(name, ret, params, need) before including core/kernel_list.h"
#endif

// ---- memory (core/backend_cpu.cpp; core/cuda/allocator.cu, runtime.cu) ----
DSC_KERNEL(alloc, void*, (size_t bytes), required)
DSC_KERNEL(free, void, (void* ptr), required)
// Copy bytes between this device and the host / itself (direction from the pointers' devices).
DSC_KERNEL(copy_bytes, void, (void* dst, Device dst_device, const void* src, Device src_device,
                              size_t bytes), required)
DSC_KERNEL(synchronize, void, (), required)

// ---- device timing (optional; train/step_profiler.cpp; core/cuda/runtime.cu) ----
// timer_mark: a marker queued behind the work queued so far, as an opaque handle (it completes
// when that work has); timer_seconds(from, to): waits for `to`, returns the device time between
// the two markers; timer_release: frees a marker. A backend without them (the CPU's: its kernels
// have finished when they return) is timed on the host clock.
DSC_KERNEL(timer_mark, void*, (), optional)
DSC_KERNEL(timer_seconds, double, (void* from, void* to), optional)
DSC_KERNEL(timer_release, void, (void* marker) noexcept, optional)

// ---- step graphs (optional; see core/graph.h, which is how to use them; core/cuda/runtime.cu) ----
// begin: the device work queued from now on is recorded, not run; end: the recording as an
// opaque replayable graph; abort: end a failed recording and discard it; replay: queue the
// recorded work once more; release: free a graph. Memory allocated while recording stays
// reserved for the graph until it is released.
DSC_KERNEL(graph_supported, bool, (std::string* why_not), optional)
DSC_KERNEL(graph_begin, void, (), optional)
DSC_KERNEL(graph_end, void*, (), optional)
DSC_KERNEL(graph_abort, void, () noexcept, optional)
DSC_KERNEL(graph_replay, void, (void* graph), optional)
DSC_KERNEL(graph_release, void, (void* graph) noexcept, optional)

// ---- elementwise, reductions, casts, relu (core/cpu/elementwise_cpu.cpp; core/cuda/elementwise.cu) ----
DSC_KERNEL(fill, void, (Tensor& t, double value), required)
// t[i] = value[0] for every i: value is one element on this device, same dtype as t (a fill
// whose value the device computed, so nothing waits to read it).
DSC_KERNEL(broadcast, void, (const Tensor& value, Tensor& t), required)
DSC_KERNEL(cast, void, (const Tensor& src, Tensor& dst), required)  // any float dtypes, same numel
// y += alpha * x; x may also be f16 with y f32 (mixed precision's gradients into the f32 master
// gradients, without an f32 copy of x).
DSC_KERNEL(axpy, void, (const Tensor& x, double alpha, Tensor& y), required)
DSC_KERNEL(scale, void, (Tensor& t, double alpha), required)  // t *= alpha
DSC_KERNEL(mul, void, (const Tensor& a, const Tensor& b, Tensor& out), required)
// out: one element, accumulated in f64/f32.
DSC_KERNEL(sum, void, (const Tensor& x, Tensor& out), required)
// Sets found_inf (one f32 element on this device) to 1 if any element of x is inf or NaN; never
// clears it, so one flag can cover many tensors.
DSC_KERNEL(check_finite, void, (const Tensor& x, Tensor& found_inf), required)
DSC_KERNEL(relu_forward, void, (const Tensor& x, Tensor& y), required)
DSC_KERNEL(relu_backward, void, (const Tensor& y, const Tensor& dy, Tensor& dx), required)  // dy * (y > 0)

// ---- conv2d (ConvShape describes all tensors; see core/cpu/conv2d.h) ----
// (core/cpu/conv2d_cpu.cpp, depthwise_cpu.cpp, winograd_cpu.cpp; core/cuda/conv2d.cu with cuDNN,
// depthwise.cu, pointwise.cu)
DSC_KERNEL(conv2d_forward, void, (const ConvShape& s, const Tensor& x, const Tensor& w,
                                  const Tensor* b, Tensor& y), required)
DSC_KERNEL(conv2d_backward_data, void, (const ConvShape& s, const Tensor& dy, const Tensor& w,
                                        Tensor& dx), required)
DSC_KERNEL(conv2d_backward_filter, void, (const ConvShape& s, const Tensor& x, const Tensor& dy,
                                          Tensor& dw, Tensor* db), required)
// Optional: the weight (and bias) gradient and, when dx is not null, the input gradient in one
// call, for backends that share work between them; null: the two entries above.
DSC_KERNEL(conv2d_backward, void, (const ConvShape& s, const Tensor& x, const Tensor& dy,
                                   const Tensor& w, Tensor* dx, Tensor& dw, Tensor* db), optional)

// ---- depsep_conv2d: fused depthwise-separable convolution (see core/cpu/depsep_conv2d.h) ----
// (core/cpu/depsep_conv2d_cpu.cpp; core/cuda/depsep_conv2d.cu)
// Optional: a backend without them gets ops::depsep_conv2d composed of conv2d (depthwise),
// conv2d (pointwise) and relu. x [N, C, H, W], wd [C, 1, R, S], wp [K, C, 1, 1], b [K],
// y [N, K, P, Q]; dy is the gradient at y. The ReLU mask: relu_mask is null, or (with s.relu, only
// on a backend whose table sets depsep_relu_bits) U8 [N, K, (P * Q + 7) / 8] that the forward
// fills with the mask as bits (bit i % 8 of byte i / 8 of a row set where y > 0) and the
// backward reads instead of y (which may then be undefined); without it the backward reads y.
DSC_KERNEL(depsep_conv2d_forward, void, (const DepSepShape& s, const Tensor& x, const Tensor& wd,
                                         const Tensor& wp, const Tensor* b, Tensor& y,
                                         Tensor* relu_mask), optional)
DSC_KERNEL(depsep_conv2d_backward, void, (const DepSepShape& s, const Tensor& x, const Tensor& wd,
                                          const Tensor& wp, const Tensor& y,
                                          const Tensor* relu_mask, const Tensor& dy, Tensor* dx,
                                          Tensor& dwd, Tensor& dwp, Tensor* db), optional)

// ---- linear: x [N, I], w [O, I], b [O], y [N, O]; y = x w^T + b ----
// (core/cpu/linear_cpu.cpp; core/cuda/linear.cu)
DSC_KERNEL(linear_forward, void, (const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y),
           required)
DSC_KERNEL(linear_backward, void, (const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                                   Tensor& dw, Tensor* db), required)

// ---- max_pool2d (NCHW; core/cpu/max_pool2d_cpu.cpp; core/cuda/max_pool2d.cu) ----
// window k x k, stride st, no padding; backward routes dy to the first maximum of each window.
DSC_KERNEL(max_pool2d_forward, void, (const Tensor& x, int k, int st, Tensor& y), required)
DSC_KERNEL(max_pool2d_backward, void, (const Tensor& x, const Tensor& y, const Tensor& dy, int k,
                                       int st, Tensor& dx), required)

// ---- global_avg_pool2d (NCHW) ----
// (core/cpu/global_avg_pool2d_cpu.cpp; core/cuda/global_avg_pool2d.cu)
// x [N, C, H, W] -> y [N, C], the mean of each plane; backward dx[n, c, h, w] = dy[n, c] / (H W).
DSC_KERNEL(global_avg_pool2d_forward, void, (const Tensor& x, Tensor& y), required)
DSC_KERNEL(global_avg_pool2d_backward, void, (const Tensor& dy, Tensor& dx), required)

// ---- batch_norm over (N, H, W) per channel; statistics and parameters are f32 ----
// (core/cpu/batch_norm_cpu.cpp; core/cuda/batch_norm.cu)
// Training: normalises with the batch statistics (biased variance), saves mean and 1/sqrt(var +
// eps), and updates running mean / running variance (unbiased) with momentum.
DSC_KERNEL(batch_norm_forward_train, void, (const Tensor& x, const Tensor& gamma,
                                            const Tensor& beta, const BatchNormParams& p,
                                            Tensor& running_mean, Tensor& running_var, Tensor& y,
                                            Tensor& save_mean, Tensor& save_invstd), required)
DSC_KERNEL(batch_norm_forward_eval, void, (const Tensor& x, const Tensor& gamma,
                                           const Tensor& beta, const Tensor& running_mean,
                                           const Tensor& running_var, const BatchNormParams& p,
                                           Tensor& y), required)
DSC_KERNEL(batch_norm_backward, void, (const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                       const Tensor& save_mean, const Tensor& save_invstd,
                                       Tensor& dx, Tensor& dgamma, Tensor& dbeta), required)
// Synchronised batch_norm (layers/sync_batch_norm.h): the passes of the two entries above with
// their per-channel sums (f64, on the device) handed out in between, to be summed over ranks.
// x, dy f32 or f16; gamma, beta, running and saved statistics f32 [C]. The arithmetic is
// batch_norm_forward_train's and batch_norm_backward's with the sums taken as given.
// stats undefined: sums [C + 1] = the sum of x per channel, and N H W in sums[C]; stats given
// (such sums, over every rank): sums [C] = the sum of (x - stats[c] / stats[C])^2 per channel.
DSC_KERNEL(batch_norm_stat_sums, void, (const Tensor& x, const Tensor& stats, Tensor& sums),
           required)
// Normalises x with mean stats[c] / m and biased variance square_sums[c] / m (m = stats[C]),
// saves mean and 1/sqrt(var + eps), updates the running statistics (unbiased variance).
DSC_KERNEL(batch_norm_normalize, void, (const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& stats, const Tensor& square_sums,
                                        const BatchNormParams& p, Tensor& running_mean,
                                        Tensor& running_var, Tensor& y, Tensor& save_mean,
                                        Tensor& save_invstd), required)
// sums [2C]: the sum of dy and of dy xhat per channel; dbeta, dgamma: the same, in f32.
DSC_KERNEL(batch_norm_grad_sums, void, (const Tensor& x, const Tensor& dy,
                                        const Tensor& save_mean, const Tensor& save_invstd,
                                        Tensor& sums, Tensor& dgamma, Tensor& dbeta), required)
// dx = gamma invstd (dy - sums[c] / m - xhat sums[C + c] / m), m = stats[C].
DSC_KERNEL(batch_norm_grad_input, void, (const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                         const Tensor& save_mean, const Tensor& save_invstd,
                                         const Tensor& sums, const Tensor& stats, Tensor& dx),
           required)

// ---- cross_entropy: softmax cross-entropy, logits [N, M], labels i32 [N] ----
// (core/cpu/cross_entropy_cpu.cpp; core/cuda/cross_entropy.cu)
// loss = mean_n -log softmax(logits)[label]: one f32 (f64 for f64 logits) element; probs [N, M]
// (logits' dtype) are saved for backward.
DSC_KERNEL(cross_entropy_forward, void, (const Tensor& logits, const Tensor& labels, Tensor& loss,
                                         Tensor& probs), required)
// dlogits = dloss * (probs - onehot) / N; dloss is a one-element tensor on this device.
DSC_KERNEL(cross_entropy_backward, void, (const Tensor& probs, const Tensor& labels,
                                          const Tensor& dloss, Tensor& dlogits), required)
// Number of rows whose argmax equals the label, ADDED to correct[0] (one i32): an exception to
// the overwrite rule, so that a training loop can count on the device without synchronising.
DSC_KERNEL(count_correct, void, (const Tensor& logits, const Tensor& labels, Tensor& correct),
           required)

// ---- optimizers over flat f32 buffers, one call updates every parameter ----
// (core/cpu/optimizer_cpu.cpp; core/cuda/optimizer.cu)
// params/grads/m/v: f32 [n]. The grads are read, not modified.
DSC_KERNEL(adam_step, void, (Tensor& params, const Tensor& grads, Tensor& m, Tensor& v,
                             const AdamParams& p), required)
DSC_KERNEL(sgd_step, void, (Tensor& params, const Tensor& grads, Tensor& momentum_buf,
                            const SgdParams& p), required)
// state: f32 [3] = {scale, growth tracker, skipped steps}. found_inf[0] != 0: scale *= backoff,
// tracker = 0, skipped += 1; else tracker += 1 and, when it reaches growth_interval, scale *=
// growth unless that would be infinite, tracker = 0.
DSC_KERNEL(update_loss_scale, void, (Tensor& state, const Tensor& found_inf,
                                     const LossScaleParams& p), required)

// ---- diagnostics (optional; core/cuda/conv2d.cu) ----
// One line per library algorithm the backend has chosen so far under the current kernel
// options (e.g. cuDNN's, per convolution shape and direction), for run logs.
DSC_KERNEL(algorithm_report, std::vector<std::string>, (), optional)

// clang-format on
#undef DSC_KERNEL
