// The training step (see step.h).
#include "train/step.h"

#include <optional>

#include "core/error.h"
#include "core/ops.h"
#include "layers/layers.h"
#include "train/step_profiler.h"

namespace dsc {

TrainStep::TrainStep(Module& model, Optimizer& optimizer, LossScaler& scaler, DType compute)
    : model_(model), optimizer_(optimizer), scaler_(scaler), compute_(compute) {
  DSC_CHECK(compute == DType::F32 || compute == DType::F16, "TrainStep: compute dtype ",
            dtype_name(compute), " (expected f32 or f16)");
  DSC_CHECK(compute == DType::F32 || scaler.enabled(),
            "TrainStep: f16 compute needs an enabled loss scaler (mixed precision)");
}

StepResult TrainStep::operator()(const Tensor& images, const Tensor& labels) {
  StepProfiler* const p = profiler_;
  if (compute_ != DType::F32) profile_mark(p, "input cast");
  const Tensor x = compute_ == DType::F32 ? images : images.to(compute_);
  profile_mark(p, "zero grad");
  optimizer_.zero_grad();
  std::optional<CastCache> cast_once;  // mixed precision: one cast kernel for all parameters
  if (compute_ != DType::F32) {
    profile_mark(p, "param cast");
    cast_once.emplace(model_, optimizer_.parameters().values(), compute_);
  }
  StepResult r;
  r.logits = p ? forward_by_layer(x) : model_.forward(x);
  {
    // The loss's nodes carry its row, so that their backward is timed as "loss bwd"; the layers'
    // nodes switch the backward pass to their own rows.
    std::optional<ProfileScope> scope;
    const int loss_row = p ? p->layer("loss", nullptr) : -1;
    if (p) {
      p->mark_id(loss_row);
      scope.emplace(loss_row);
    }
    r.loss = ops::cross_entropy(r.logits, labels);
    // Several processes: each rank's loss is weighted so that the averaged gradient is the global
    // batch's (train/distributed.h).
    const Tensor objective = reducer_ && reducer_->loss_weight() != 1.0
                                 ? ops::scale(r.loss, reducer_->loss_weight())
                                 : r.loss;
    if (p) p->mark_id(p->rows()[loss_row].backward);
    GradientHookScope hook(reducer_ ? reducer_->begin_backward() : nullptr);
    if (scaler_.enabled()) {
      ops::mul(objective, scaler_.scale_tensor()).backward();
    } else {
      objective.backward();
    }
  }
  Tensor& grads = optimizer_.parameters().grads();
  if (reducer_) {
    profile_mark(p, "gradient allreduce");
    reducer_->reduce(grads);
  }
  if (scaler_.enabled()) {
    profile_mark(p, "loss-scale check");
    Tensor inf = scaler_.check(grads);
    profile_mark(p, "optimizer");
    optimizer_.step(inf, scaler_.scale_tensor());  // skipped on the device after an overflow
    scaler_.update();
  } else {
    profile_mark(p, "optimizer");
    optimizer_.step();
  }
  return r;
}

Tensor TrainStep::forward_by_layer(const Tensor& x) {
  auto* seq = dynamic_cast<Sequential*>(&model_);
  if (!seq) {  // another kind of model: one row for its whole forward (and backward)
    const int id = profiler_->layer("model", &model_);
    profiler_->mark_id(id);
    ProfileScope scope(id);
    Tensor y = model_.forward(x);
    profiler_->set_shapes(id, x.shape(), y.shape());
    return y;
  }
  Tensor h = x;  // as Sequential::forward, one child at a time
  for (const auto& [name, child] : seq->children()) {
    const int id = profiler_->layer(name, child.get());
    profiler_->mark_id(id);
    ProfileScope scope(id);
    const Shape in = h.shape();
    h = child->forward(h);
    profiler_->set_shapes(id, in, h.shape());
  }
  return h;
}

}  // namespace dsc
