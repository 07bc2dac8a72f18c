// Optimizers over a model's parameters held in ONE contiguous f32 buffer (values) with their
// gradients in another (grads), so an update is one fused kernel call over every parameter and a
// mixed-precision step can check all gradients for inf/NaN at once. Constructing a
// ParameterBuffer moves the model's parameters into it; existing handles keep working.
#pragma once

#include <memory>
#include <string>

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
  explicit Optimizer(const Module& model) : params_(model) {}
  virtual ~Optimizer() = default;
  // One update from the accumulated gradients, which are first divided by grad_scale (the loss
  // scale of mixed-precision training; 1 otherwise).
  virtual void step(float grad_scale = 1.0f) = 0;
  virtual std::string describe() const = 0;
  void zero_grad() { params_.zero_grad(); }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  int64_t steps() const { return steps_; }
  ParameterBuffer& parameters() { return params_; }

 protected:
  ParameterBuffer params_;
  float lr_ = 1e-3f;
  int64_t steps_ = 0;  // updates applied so far
};

struct AdamOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;  // Keras defaults
  float weight_decay = 0.0f;                                     // decoupled
};

// Adam with Keras' arithmetic (see core/ops/optimizer.h).
class Adam : public Optimizer {
 public:
  Adam(const Module& model, AdamOptions opt = {});
  void step(float grad_scale = 1.0f) override;
  std::string describe() const override;

 private:
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
  void step(float grad_scale = 1.0f) override;
  std::string describe() const override;

 private:
  SgdOptions opt_;
  Tensor buf_;
};

}  // namespace dsc
