// Module: the base of every layer. A module owns its parameters (trainable tensors), its buffers
// (state that is saved but not trained, e.g. BatchNorm running statistics) and its children, and
// nothing else: memory and streams belong to the device runtime.
//
// Adding a layer = writing one class: derive from Module, create parameters with
// register_parameter() in the constructor, and implement forward() with differentiable ops from
// core/ops.h (their backward rules come for free). See README "Writing a layer".
#pragma once

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"

namespace dsc {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  virtual std::string name() const = 0;
  // One line describing the configuration, e.g. "Conv2d(3 -> 128, 3x3, stride 1, pad 1, bias)".
  virtual std::string describe() const { return name(); }

  // All trainable parameters / buffers of this module and its children, depth first, with dotted
  // names ("conv1.weight"). The returned tensors share storage with the module's.
  std::vector<NamedTensor> parameters() const;
  std::vector<NamedTensor> buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

  // Train / eval mode for this module and its children (BatchNorm switches statistics).
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves parameters and buffers to `device` (in place: existing handles follow).
  void to(Device device);
  // Sets every parameter's gradient to zero (gradients that exist keep their storage).
  void zero_grad();

 protected:
  Tensor& register_parameter(std::string name, Tensor t);
  Tensor& register_buffer(std::string name, Tensor t);
  template <class M> std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect(const std::string& prefix, bool params, std::vector<NamedTensor>& out) const;
  std::vector<NamedTensor> params_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Keras' parameter count: `total` includes non-trainable buffers (BatchNorm moving mean and
// variance); `trainable` is the parameters alone.
struct ParamCount {
  int64_t total = 0, trainable = 0;
  int64_t non_trainable() const { return total - trainable; }
};
ParamCount count_parameters(const Module& m);

// He-uniform initialisation as Keras computes it: U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)) with
// fan_in = shape[1] * receptive field for a [K, C, R, S] kernel and shape[1] for [out, in].
// (Keras computes a depthwise kernel's fan-in as C * R * S; pass that as fan_in_override.)
void he_uniform_(Tensor& w, std::mt19937_64& rng, int64_t fan_in_override = 0);

}  // namespace dsc
