// Out-of-tree differentiable ops: a forward that runs the op's own kernels (one per device) and a
// backward that returns the gradient of each tensor input, recorded in the autograd graph like a
// built-in op (core/autograd.h). A minimal op:
//
//   struct Square : dsc::Function {
//     static constexpr const char* name = "square";
//     dsc::Tensor forward(const dsc::Tensor& x) {  // runs without recording a graph
//       save_for_backward({x});
//       return dsc::ops::mul(x, x);                // or the op's own CPU / CUDA kernel
//     }
//     std::vector<dsc::Tensor> backward(const dsc::Tensor& dy) {  // one gradient per tensor input
//       return {dsc::ops::scale(dsc::ops::mul(dy, saved(0)), 2.0)};
//     }
//   };
//   dsc::Tensor y = dsc::apply<Square>(x);
//
// apply<F>(args...) makes a fresh F, passes every argument to F::forward in order (Tensor
// arguments are the op's inputs, anything else is passed as it is: sizes, flags, factors), and
// records F as the output's gradient function when an input needs a gradient. F keeps whatever
// backward needs in its own members; save_for_backward() keeps tensors detached, so saving the
// output creates no reference cycle. Returning an undefined tensor from backward means "no
// gradient" (e.g. when !needs_input_grad(i)). Gradients are checked against the inputs' shapes
// and devices; the engine accumulates them and converts their dtype to the input's.
//
// Devices: forward and backward see the inputs on their device and dispatch themselves, e.g.
// `x.device() == Device::CUDA ? my_op_cuda(x, y) : my_op_cpu(x, y)`. A CPU kernel reads
// data<T>() (host pointers; T = float, double, or uint16_t for f16 bits with core/half.h); a CUDA
// kernel takes device_data<T>() and runs on cuda_stream() (core/cuda_interop.h). Build the .cu
// file only when dsc has CUDA (DSC_WITH_CUDA from find_package(dsc)).
//
// Mixed precision, as the built-in ops: when the first tensor argument is f16, every later f32
// tensor argument that requires a gradient (a parameter) reaches forward as its f16 view
// (compute_view, core/mixed_precision.h), and its gradient arrives in f32.
//
// Tested in tests/core/test_function.cpp (and on CUDA in tests/cuda/test_cuda_function.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"

namespace dsc {

// Base of an out-of-tree op (see above).
class Function {
 public:
  // Tensors for backward (inputs or outputs), kept detached from the graph.
  void save_for_backward(std::initializer_list<Tensor> tensors);
  const Tensor& saved(size_t i) const;
  // Whether tensor input i (counting Tensor arguments of forward only) needs a gradient.
  bool needs_input_grad(size_t i) const;
  size_t num_inputs() const { return needs_grad_.size(); }

 private:
  template <class F, class... Args>
  friend Tensor apply(Args&&... args);
  std::vector<Tensor> saved_;
  std::vector<bool> needs_grad_;
};

// An uninitialised tensor with t's shape, dtype and device (for an op's output or gradient).
inline Tensor empty_like(const Tensor& t) {
  return Tensor::empty(t.shape(), t.dtype(), t.device());
}

namespace detail {

template <class T>
constexpr bool is_tensor_arg = std::is_same_v<std::remove_cvref_t<T>, Tensor>;

// For each argument, the index of its tensor among the Tensor arguments.
template <class... Args>
constexpr std::array<size_t, sizeof...(Args)> tensor_slots() {
  constexpr std::array<bool, sizeof...(Args)> is{is_tensor_arg<Args>...};
  std::array<size_t, sizeof...(Args)> slot{};
  size_t k = 0;
  for (size_t i = 0; i < is.size(); ++i) {
    slot[i] = k;
    if (is[i]) ++k;
  }
  return slot;
}

// Mixed precision: the tensor inputs forward sees (see the header comment).
std::vector<Tensor> function_inputs(std::vector<Tensor> inputs);

// The graph node of an applied Function: checks what backward returns before the engine uses it.
class FunctionNodeBase : public Node {
 public:
  std::vector<Tensor> backward(const Tensor& doutput) override;

 protected:
  virtual std::vector<Tensor> run_backward(const Tensor& doutput) = 0;

 public:
  DType output_dtype = DType::F32;  // backward's dy comes in this dtype
};

template <class F>
class FunctionNode : public FunctionNodeBase {
 public:
  explicit FunctionNode(std::shared_ptr<F> fn) : fn_(std::move(fn)) {}
  const char* name() const override { return F::name; }

 protected:
  std::vector<Tensor> run_backward(const Tensor& doutput) override {
    return fn_->backward(doutput);
  }

 private:
  std::shared_ptr<F> fn_;
};

// Checks forward's output and records `node` on it (a detached handle, so that an output which
// is an input, or which F saved, does not end up owning its own node).
Tensor record_function(Tensor output, std::shared_ptr<FunctionNodeBase> node, const char* name);

template <size_t I, class... Args, class A>
decltype(auto) forward_arg(const std::vector<Tensor>& inputs, A&& arg) {
  if constexpr (is_tensor_arg<A>) {
    return static_cast<const Tensor&>(inputs[tensor_slots<Args...>()[I]]);
  } else {
    return std::forward<A>(arg);
  }
}

template <class F, class... Args, size_t... I>
Tensor call_forward(F& fn, const std::vector<Tensor>& inputs, std::tuple<Args&&...> args,
                    std::index_sequence<I...>) {
  return fn.forward(forward_arg<I, Args...>(inputs, std::get<I>(std::move(args)))...);
}

}  // namespace detail

// Runs F::forward on `args` and records F in the graph (see the header comment).
template <class F, class... Args>
Tensor apply(Args&&... args) {
  static_assert(std::is_base_of_v<Function, F>, "apply<F>: F must derive from dsc::Function");
  static_assert(std::is_default_constructible_v<F>, "apply<F>: F must be default-constructible");
  std::vector<Tensor> inputs;
  (
      [&](const auto& a) {
        if constexpr (detail::is_tensor_arg<decltype(a)>) inputs.push_back(a);
      }(args),
      ...);
  inputs = detail::function_inputs(std::move(inputs));
  auto fn = std::make_shared<F>();
  bool any = false;
  for (const Tensor& t : inputs) {
    const bool want = grad_enabled() && t.defined() && (t.requires_grad() || t.grad_fn());
    fn->needs_grad_.push_back(want);
    any = any || want;
  }
  Tensor output;
  {
    NoGradGuard no_grad;  // forward's own ops record nothing: backward is F's
    output = detail::call_forward<F, Args...>(*fn, inputs,
                                              std::forward_as_tuple(std::forward<Args>(args)...),
                                              std::index_sequence_for<Args...>{});
  }
  if (!any) return detail::record_function(std::move(output), nullptr, F::name);
  auto node = std::make_shared<detail::FunctionNode<F>>(fn);
  node->inputs = std::move(inputs);
  return detail::record_function(std::move(output), std::move(node), F::name);
}

}  // namespace dsc
