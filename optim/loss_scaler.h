// Dynamic loss scaling for mixed-precision training, with ATen's GradScaler semantics: the loss is
// multiplied by scale() before backward; after it, found_inf() checks every gradient; a step with
// an inf/NaN gradient is skipped and the scale multiplied by backoff (0.5); after growth_interval
// (2000) consecutive finite steps the scale is multiplied by growth (2), never to infinity.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace dsc {

struct LossScalerOptions {
  float init_scale = 65536.0f;  // 2^16
  float growth = 2.0f;
  float backoff = 0.5f;
  int64_t growth_interval = 2000;
  bool enabled = true;  // disabled: scale() is 1 and nothing is ever skipped
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions opt = {});
  float scale() const { return opt_.enabled ? scale_ : 1.0f; }
  bool enabled() const { return opt_.enabled; }
  // Whether any element of the (scaled) gradient buffer is inf or NaN.
  bool found_inf(const Tensor& grads) const;
  // Records the outcome of a step; returns true if the optimizer step should be applied.
  bool update(bool found_inf);
  int64_t skipped() const { return skipped_; }
  int64_t growth_tracker() const { return tracker_; }

 private:
  LossScalerOptions opt_;
  float scale_;
  int64_t tracker_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace dsc
