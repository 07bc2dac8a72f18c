// The training step (see step.h).
#include "train/step.h"

#include <optional>

#include "core/error.h"
#include "core/ops.h"
#include "layers/layers.h"

namespace dsc {

TrainStep::TrainStep(Module& model, Optimizer& optimizer, LossScaler& scaler, DType compute)
    : model_(model), optimizer_(optimizer), scaler_(scaler), compute_(compute) {
  DSC_CHECK(compute == DType::F32 || compute == DType::F16, "TrainStep: compute dtype ",
            dtype_name(compute), " (expected f32 or f16)");
  DSC_CHECK(compute == DType::F32 || scaler.enabled(),
            "TrainStep: f16 compute needs an enabled loss scaler (mixed precision)");
}

StepResult TrainStep::operator()(const Tensor& images, const Tensor& labels) {
  const Tensor x = compute_ == DType::F32 ? images : images.to(compute_);
  optimizer_.zero_grad();
  std::optional<CastCache> cast_once;  // mixed precision: one cast kernel for all parameters
  if (compute_ != DType::F32) cast_once.emplace(model_, optimizer_.parameters().values(), compute_);
  StepResult r;
  r.logits = model_.forward(x);
  r.loss = ops::cross_entropy(r.logits, labels);
  const Tensor objective = reducer_ && reducer_->loss_weight() != 1.0
                               ? ops::scale(r.loss, reducer_->loss_weight())
                               : r.loss;
  if (scaler_.enabled()) {
    ops::mul(objective, scaler_.scale_tensor()).backward();
    Tensor inf = scaler_.check(optimizer_.parameters().grads());
    if (reducer_) reducer_->reduce(optimizer_.parameters().grads(), &inf);
    optimizer_.step(inf, scaler_.scale_tensor());  // skipped on the device after an overflow
    scaler_.update();
  } else {
    objective.backward();
    if (reducer_) reducer_->reduce(optimizer_.parameters().grads(), nullptr);
    optimizer_.step();
  }
  return r;
}

}  // namespace dsc
