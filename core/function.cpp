// The non-template half of out-of-tree ops (see function.h): saved tensors, the mixed-precision
// view of parameters, and the checks on what forward and backward return. Tested in
// tests/core/test_function.cpp.
#include "core/function.h"

#include "core/error.h"
#include "core/mixed_precision.h"

namespace dsc {

void Function::save_for_backward(std::initializer_list<Tensor> tensors) {
  for (const Tensor& t : tensors) saved_.push_back(t.defined() ? t.detach() : Tensor());
}

const Tensor& Function::saved(size_t i) const {
  DSC_CHECK(i < saved_.size(), "Function::saved(", i, "): only ", saved_.size(),
            " tensors were saved by save_for_backward");
  return saved_[i];
}

bool Function::needs_input_grad(size_t i) const {
  DSC_CHECK(i < needs_grad_.size(), "Function::needs_input_grad(", i, "): the op has ",
            needs_grad_.size(), " tensor inputs");
  return needs_grad_[i];
}

namespace detail {

std::vector<Tensor> function_inputs(std::vector<Tensor> inputs) {
  if (inputs.empty() || !inputs[0].defined()) return inputs;
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].requires_grad())
      inputs[i] = param_for_input(inputs[i], inputs[0]);
  }
  return inputs;
}

std::vector<Tensor> FunctionNodeBase::backward(const Tensor& doutput) {
  const Tensor dy = doutput.dtype() == output_dtype ? doutput : doutput.to(output_dtype);
  std::vector<Tensor> grads = run_backward(dy);
  DSC_CHECK(grads.size() == inputs.size(), name(), ": backward returned ", grads.size(),
            " gradients for ", inputs.size(), " tensor inputs (one per input, undefined for none)");
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    const Tensor& in = inputs[i];
    if (!g.defined() || !in.defined()) continue;
    DSC_CHECK(g.shape() == in.shape() && g.device() == in.device(), name(),
              ": backward returned a gradient ", g.str(), " for input ", i, " ", in.str(),
              " (expected its shape, on its device)");
  }
  return grads;
}

Tensor record_function(Tensor output, std::shared_ptr<FunctionNodeBase> node, const char* name) {
  DSC_CHECK(output.defined(), name, ": forward returned an undefined tensor");
  if (!node) return output;
  Tensor y = output.detach();
  node->output_dtype = y.dtype();
  record(y, std::move(node));
  return y;
}

}  // namespace detail
}  // namespace dsc
