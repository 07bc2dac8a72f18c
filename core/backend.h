// The per-device kernel table. Differentiable ops (core/ops.h) allocate outputs and call the
// kernels of their inputs' device through this table; a backend fills its table in one explicit
// registration call (register_cpu_kernels, register_cuda_kernels), so adding a device touches no
// layer code and needs no static-initialiser tricks.
//
// Conventions for every entry: tensors are contiguous, outputs are preallocated by the caller and
// are OVERWRITTEN (gradients accumulate above this level), all tensors of one call live on the
// table's device, and floating tensors of one call share a dtype unless an entry says otherwise.
// Optional arguments are passed as pointers (null = absent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu/conv2d.h"
#include "core/cpu/depsep_conv2d.h"
#include "core/tensor.h"

namespace dsc {

// The optimizer entries can take their step-dependent inputs from one-element f32 tensors on the
// device instead of host values, so that a mixed-precision step needs no host synchronisation:
// found_inf (skip the whole update, leaving every buffer bit-identical, when its value is not 0),
// scale (divide the gradients by its value instead of grad_scale) and step_count (the number of
// updates applied so far, to which the entry adds 1 unless it skipped; exact up to 2^24 updates;
// Adam's t = count + 1). A null pointer means the host value.
struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;
  float weight_decay = 0.0f;  // decoupled (AdamW), multiplied by lr
  int64_t step = 1;           // 1-based, for bias correction (when step_count is null)
  float grad_scale = 1.0f;    // gradients are divided by this first (loss-scale unscaling)
  const Tensor* found_inf = nullptr;
  const Tensor* scale = nullptr;
  Tensor* step_count = nullptr;
};

struct SgdParams {
  float lr = 0.01f, momentum = 0.0f, weight_decay = 0.0f;  // decoupled weight decay
  bool nesterov = false;
  float grad_scale = 1.0f;
  const Tensor* found_inf = nullptr;  // as in AdamParams
  const Tensor* scale = nullptr;
  Tensor* step_count = nullptr;  // counted (+1 unless skipped), not used by the arithmetic
};

// Dynamic loss scaling with ATen's GradScaler rule (see optim/loss_scaler.h).
struct LossScaleParams {
  float growth = 2.0f, backoff = 0.5f;
  int64_t growth_interval = 2000;
};

struct BatchNormParams {
  float momentum = 0.99f;  // Keras convention: running = momentum * running + (1 - momentum) * batch
  float eps = 1e-3f;
};

struct KernelTable {
  Device device = Device::CPU;
  bool available = false;
  std::string unavailable_reason;

  // ---- memory ----
  void* (*alloc)(size_t bytes) = nullptr;
  void (*free)(void* ptr) = nullptr;
  // Copy bytes between this device and the host / itself (direction from the pointers' devices).
  void (*copy_bytes)(void* dst, Device dst_device, const void* src, Device src_device,
                     size_t bytes) = nullptr;
  void (*synchronize)() = nullptr;

  // ---- step graphs (optional; see core/graph.h, which is how to use them) ----
  // begin: the device work queued from now on is recorded, not run; end: the recording as an
  // opaque replayable graph; abort: end a failed recording and discard it; replay: queue the
  // recorded work once more; release: free a graph. Memory allocated while recording stays
  // reserved for the graph until it is released.
  bool (*graph_supported)(std::string* why_not) = nullptr;
  void (*graph_begin)() = nullptr;
  void* (*graph_end)() = nullptr;
  void (*graph_abort)() = nullptr;
  void (*graph_replay)(void* graph) = nullptr;
  void (*graph_release)(void* graph) = nullptr;

  // ---- elementwise ----
  void (*fill)(Tensor& t, double value) = nullptr;
  // t[i] = value[0] for every i: value is one element on this device, same dtype as t (a fill
  // whose value the device computed, so nothing waits to read it).
  void (*broadcast)(const Tensor& value, Tensor& t) = nullptr;
  void (*cast)(const Tensor& src, Tensor& dst) = nullptr;  // any float dtypes, same numel
  // y += alpha * x; x may also be f16 with y f32 (mixed precision's gradients into the f32 master
  // gradients, without an f32 copy of x).
  void (*axpy)(const Tensor& x, double alpha, Tensor& y) = nullptr;
  void (*scale)(Tensor& t, double alpha) = nullptr;                 // t *= alpha
  void (*mul)(const Tensor& a, const Tensor& b, Tensor& out) = nullptr;
  void (*sum)(const Tensor& x, Tensor& out) = nullptr;  // out: one element, accumulated in f64/f32
  // Sets found_inf (one f32 element on this device) to 1 if any element of x is inf or NaN; never
  // clears it, so one flag can cover many tensors.
  void (*check_finite)(const Tensor& x, Tensor& found_inf) = nullptr;

  // ---- convolution (ConvShape describes all tensors; see core/cpu/conv2d.h) ----
  void (*conv2d_forward)(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                         Tensor& y) = nullptr;
  void (*conv2d_backward_data)(const ConvShape& s, const Tensor& dy, const Tensor& w,
                               Tensor& dx) = nullptr;
  void (*conv2d_backward_filter)(const ConvShape& s, const Tensor& x, const Tensor& dy,
                                 Tensor& dw, Tensor* db) = nullptr;
  // Optional: the weight (and bias) gradient and, when dx is not null, the input gradient in one
  // call, for backends that share work between them; null: the two entries above.
  void (*conv2d_backward)(const ConvShape& s, const Tensor& x, const Tensor& dy, const Tensor& w,
                          Tensor* dx, Tensor& dw, Tensor* db) = nullptr;

  // ---- fused depthwise-separable convolution (see core/cpu/depsep_conv2d.h) ----
  // Optional: a backend without them gets ops::depsep_conv2d composed of conv2d (depthwise),
  // conv2d (pointwise) and relu. x [N, C, H, W], wd [C, 1, R, S], wp [K, C, 1, 1], b [K],
  // y [N, K, P, Q]; backward reads y for the ReLU mask, dy is the gradient at y.
  void (*depsep_conv2d_forward)(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                                const Tensor& wp, const Tensor* b, Tensor& y) = nullptr;
  void (*depsep_conv2d_backward)(const DepSepShape& s, const Tensor& x, const Tensor& wd,
                                 const Tensor& wp, const Tensor& y, const Tensor& dy, Tensor* dx,
                                 Tensor& dwd, Tensor& dwp, Tensor* db) = nullptr;

  // ---- linear: x [N, I], w [O, I], b [O], y [N, O]; y = x w^T + b ----
  void (*linear_forward)(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) = nullptr;
  void (*linear_backward)(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                          Tensor& dw, Tensor* db) = nullptr;

  // ---- activations and pooling (NCHW) ----
  void (*relu_forward)(const Tensor& x, Tensor& y) = nullptr;
  void (*relu_backward)(const Tensor& y, const Tensor& dy, Tensor& dx) = nullptr;  // dy * (y > 0)
  // window k x k, stride st, no padding; backward routes dy to the first maximum of each window.
  void (*max_pool2d_forward)(const Tensor& x, int k, int st, Tensor& y) = nullptr;
  void (*max_pool2d_backward)(const Tensor& x, const Tensor& y, const Tensor& dy, int k, int st,
                              Tensor& dx) = nullptr;

  // ---- batch norm over (N, H, W) per channel; statistics and parameters are f32 ----
  // Training: normalises with the batch statistics (biased variance), saves mean and 1/sqrt(var +
  // eps), and updates running mean / running variance (unbiased) with momentum.
  void (*batch_norm_forward_train)(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   const BatchNormParams& p, Tensor& running_mean,
                                   Tensor& running_var, Tensor& y, Tensor& save_mean,
                                   Tensor& save_invstd) = nullptr;
  void (*batch_norm_forward_eval)(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var,
                                  const BatchNormParams& p, Tensor& y) = nullptr;
  void (*batch_norm_backward)(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                              const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                              Tensor& dgamma, Tensor& dbeta) = nullptr;

  // ---- softmax cross-entropy: logits [N, M], labels i32 [N]; loss = mean_n -log softmax ----
  // loss: one f32 (f64 for f64 logits) element; probs [N, M] (logits' dtype) are saved for backward.
  void (*cross_entropy_forward)(const Tensor& logits, const Tensor& labels, Tensor& loss,
                                Tensor& probs) = nullptr;
  // dlogits = dloss * (probs - onehot) / N; dloss is a one-element tensor on this device.
  void (*cross_entropy_backward)(const Tensor& probs, const Tensor& labels, const Tensor& dloss,
                                 Tensor& dlogits) = nullptr;
  // Number of rows whose argmax equals the label, ADDED to correct[0] (one i32): an exception to
  // the overwrite rule, so that a training loop can count on the device without synchronising.
  void (*count_correct)(const Tensor& logits, const Tensor& labels, Tensor& correct) = nullptr;

  // ---- optimizers over flat f32 buffers (one call updates every parameter) ----
  // params/grads/m/v: f32 [n]. The grads are read, not modified.
  void (*adam_step)(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v,
                    const AdamParams& p) = nullptr;
  void (*sgd_step)(Tensor& params, const Tensor& grads, Tensor& momentum_buf,
                   const SgdParams& p) = nullptr;
  // state: f32 [3] = {scale, growth tracker, skipped steps}. found_inf[0] != 0: scale *= backoff,
  // tracker = 0, skipped += 1; else tracker += 1 and, when it reaches growth_interval, scale *=
  // growth unless that would be infinite, tracker = 0.
  void (*update_loss_scale)(Tensor& state, const Tensor& found_inf,
                            const LossScaleParams& p) = nullptr;

  // ---- diagnostics (optional) ----
  // One line per library algorithm the backend has chosen so far under the current kernel
  // options (e.g. cuDNN's, per convolution shape and direction), for run logs.
  std::vector<std::string> (*algorithm_report)() = nullptr;
};

// The table of a device; throws with the reason when that backend is not available.
const KernelTable& kernels(Device device);
// Whether a backend is compiled in and usable (e.g. CUDA built and a GPU present).
bool device_available(Device device);
std::string device_unavailable_reason(Device device);

// Explicit registration calls, made once by kernels() on first use.
void register_cpu_kernels(KernelTable& table);
void register_cuda_kernels(KernelTable& table);  // sets available = false without a GPU

}  // namespace dsc
