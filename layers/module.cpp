// Module bookkeeping: parameter/buffer registration and traversal, modes, device moves, counts.
#include "layers/module.h"

#include <cmath>

#include "core/error.h"

namespace dsc {

Tensor& Module::register_parameter(std::string name, Tensor t) {
  t.set_requires_grad(true);
  params_.push_back({std::move(name), t});
  return params_.back().tensor;
}

Tensor& Module::register_buffer(std::string name, Tensor t) {
  buffers_.push_back({std::move(name), t});
  return buffers_.back().tensor;
}

void Module::collect(const std::string& prefix, bool params, std::vector<NamedTensor>& out) const {
  for (const NamedTensor& p : params ? params_ : buffers_) out.push_back({prefix + p.name, p.tensor});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

std::vector<NamedTensor> Module::parameters() const {
  std::vector<NamedTensor> out;
  collect("", true, out);
  return out;
}

std::vector<NamedTensor> Module::buffers() const {
  std::vector<NamedTensor> out;
  collect("", false, out);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  for (auto list : {parameters(), buffers()}) {
    for (NamedTensor& p : list) {
      if (p.tensor.device() == device) continue;
      p.tensor.rehome_(Tensor::empty(p.tensor.shape(), p.tensor.dtype(), device));
      if (p.tensor.grad().defined()) p.tensor.set_grad(p.tensor.grad().to(device));
    }
  }
}

void Module::zero_grad() {
  for (NamedTensor& p : parameters()) p.tensor.zero_grad();
}

ParamCount count_parameters(const Module& m) {
  ParamCount c;
  for (const NamedTensor& p : m.parameters()) c.trainable += p.tensor.numel();
  c.total = c.trainable;
  for (const NamedTensor& b : m.buffers()) c.total += b.tensor.numel();
  return c;
}

void he_uniform_(Tensor& w, std::mt19937_64& rng, int64_t fan_in_override) {
  int64_t fan_in = fan_in_override;
  if (fan_in == 0) {
    DSC_CHECK(w.ndim() >= 2, "he_uniform_: need a weight of rank >= 2, got ", w.str());
    fan_in = w.numel() / w.dim(0);
  }
  const double limit = std::sqrt(6.0 / static_cast<double>(fan_in));
  Tensor init = Tensor::uniform(w.shape(), rng, -limit, limit, w.dtype());
  w.copy_(init);
}

}  // namespace dsc
