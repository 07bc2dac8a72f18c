// Dynamic loss scaling for mixed-precision training, with ATen's GradScaler semantics: the loss is
// multiplied by the scale before backward; after it, every gradient is checked for inf/NaN; a step
// with an inf/NaN gradient is skipped and the scale multiplied by backoff (0.5); after
// growth_interval (2000) consecutive finite steps the scale is multiplied by growth (2), never to
// infinity.
//
// The state (scale, growth tracker, skipped steps) lives in one f32 tensor on the training device,
// so a training step can run without the host waiting for the GPU:
//   ops::mul(loss, scaler.scale_tensor()).backward();
//   const Tensor& inf = scaler.check(grads);   // device flag
//   optimizer.step(inf, scaler.scale_tensor());  // skipped on the device when inf is set
//   scaler.update();                              // new scale, on the device
// The host-side calls (scale(), found_inf(), update(bool), skipped(), growth_tracker()) read or
// set the same state and synchronise; they serve logs, tests and callers that must know at once.
// Tested in tests/core/test_amp.cpp (and the device kernels in tests/cuda/test_cuda_kernels.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace dsc {

struct LossScalerOptions {
  float init_scale = 65536.0f;  // 2^16
  float growth = 2.0f;
  float backoff = 0.5f;
  int64_t growth_interval = 2000;
  bool enabled = true;  // disabled: the scale is 1 and nothing is ever skipped
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions opt = {}, Device device = Device::CPU);
  bool enabled() const { return opt_.enabled; }

  // ---- device-resident (no synchronisation) ----
  // The current scale as a one-element f32 tensor (1 when disabled); a view of the state, so it
  // follows update().
  const Tensor& scale_tensor() const { return scale_; }
  // Clears the flag and sets it if any element of grads (the scaled gradients) is inf or NaN;
  // returns the flag (one f32 element; stays 0 when disabled).
  const Tensor& check(const Tensor& grads);
  // The flag the last check() left (what it returned).
  const Tensor& flag() const { return flag_; }
  // Applies the flag left by check() to the state (nothing when disabled).
  void update();

  // ---- host side (synchronises) ----
  float scale() const;
  bool found_inf(const Tensor& grads) const;
  // Records the outcome of a step; returns true if the optimizer step should be applied.
  bool update(bool found_inf);
  int64_t skipped() const;
  int64_t growth_tracker() const;

  // The state tensor (scale, growth tracker, skipped steps) for a training checkpoint: restoring
  // it into this tensor restores the scaler.
  std::vector<NamedTensor> state() const { return {{"loss_scaler.state", state_}}; }

 private:
  LossScalerOptions opt_;
  Tensor state_;  // f32 [3]: scale, growth tracker, skipped steps
  Tensor scale_;  // view of state_[0] (enabled) or a constant 1
  Tensor flag_;   // f32 [1]
};

}  // namespace dsc
