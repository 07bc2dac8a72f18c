// Optimizers over a model's parameters held in ONE contiguous f32 buffer (values) with their
// gradients in another (grads), so an update is one fused kernel call over every parameter and a
// mixed-precision step can check all gradients for inf/NaN at once. Constructing a
// ParameterBuffer moves the model's parameters into it; existing handles keep working.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "layers/module.h"

namespace dsc {

class ParameterBuffer {
 public:
  explicit ParameterBuffer(const Module& model);
  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  int64_t numel() const { return values_.numel(); }
  Device device() const { return values_.device(); }
  void zero_grad() { grads_.fill_(0.0); }

 private:
  Tensor values_, grads_;
};

class Optimizer {
 public:
  explicit Optimizer(const Module& model);
  virtual ~Optimizer() = default;
  // One update from the accumulated gradients, which are first divided by grad_scale (the loss
  // scale of mixed-precision training; 1 otherwise).
  void step(float grad_scale = 1.0f) { apply(nullptr, nullptr, grad_scale); }
  // The same with device-resident inputs (see LossScaler): the update is skipped on the device
  // when found_inf's element is not 0, and the gradients are divided by scale's element. Nothing
  // waits for the GPU.
  void step(const Tensor& found_inf, const Tensor& scale) { apply(&found_inf, &scale, 1.0f); }
  virtual std::string describe() const = 0;
  void zero_grad() { params_.zero_grad(); }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  // Updates applied so far (skipped steps not counted; reads the device).
  int64_t steps() const;
  ParameterBuffer& parameters() { return params_; }
  // The optimizer's state as named tensors sharing its storage (the update count and, per
  // algorithm, its moments or momentum buffer): what a training checkpoint saves and restores
  // (layers/checkpoint.h) so a resumed run continues bit for bit.
  virtual std::vector<NamedTensor> state() const { return {{"optimizer.steps", step_count_}}; }

 protected:
  virtual void apply(const Tensor* found_inf, const Tensor* scale, float grad_scale) = 0;
  ParameterBuffer params_;
  float lr_ = 1e-3f;
  Tensor step_count_;  // f32 [1] on the parameters' device: updates applied so far
};

struct AdamOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;  // Keras defaults
  float weight_decay = 0.0f;                                     // decoupled
};

// Adam with Keras' arithmetic (see core/cpu/optimizer.h).
class Adam : public Optimizer {
 public:
  Adam(const Module& model, AdamOptions opt = {});
  std::string describe() const override;
  std::vector<NamedTensor> state() const override;

 private:
  void apply(const Tensor* found_inf, const Tensor* scale, float grad_scale) override;
  AdamOptions opt_;
  Tensor m_, v_;
};

struct SgdOptions {
  float lr = 0.01f, momentum = 0.9f, weight_decay = 0.0f;  // decoupled weight decay
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  Sgd(const Module& model, SgdOptions opt = {});
  std::string describe() const override;
  std::vector<NamedTensor> state() const override;

 private:
  void apply(const Tensor* found_inf, const Tensor* scale, float grad_scale) override;
  SgdOptions opt_;
  Tensor buf_;
};

}  // namespace dsc
