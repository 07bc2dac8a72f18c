// Mixed precision's parameters: master parameters stay f32 (the optimizer updates them) while an
// f16 input makes an op compute in f16. The differentiable ops that take parameters (conv2d,
// depsep_conv2d, linear, add, mul) convert an f32 parameter given with an f16 input themselves,
// through compute_view below, so a layer written with plain `ops::linear(x, weight_, bias_)`
// trains under mixed precision with its gradients arriving in f32. The cast's backward hands the
// f16 gradient on and the engine widens it into the f32 master gradient (core/autograd.cpp).
//
// ParameterCasts: a thread's set of parameters already converted (e.g. one cast kernel over a
// model's whole flat parameter buffer: CastCache in layers/layers.h); compute_view takes views of
// it instead of casting again. Tested in tests/core/test_amp.cpp, test_models.cpp (bit-identical
// to per-parameter casts) and test_custom_layer.cpp (a layer without compute_view, bit for bit).
#pragma once

#include <utility>
#include <vector>

#include "core/tensor.h"

namespace dsc {

// `param` in x's dtype: the parameter itself when the dtypes agree (or param is undefined),
// otherwise a differentiable cast (cast's gradient rule), taken from the thread's active
// ParameterCasts when they hold this parameter in x's dtype.
Tensor compute_view(const Tensor& param, const Tensor& x);

// The mixed-precision pair the ops convert by themselves: an f16 input and an f32 parameter on
// the same device.
bool is_mixed_precision_pair(const Tensor& input, const Tensor& param);

// compute_view(param, input) for a mixed-precision pair, param unchanged otherwise (the op's own
// dtype checks then refuse other mismatches).
Tensor param_for_input(const Tensor& param, const Tensor& input);

// Parameters converted ahead of use. Constructing one makes it this thread's active set (the
// innermost of nested sets); destroying it restores the previous one. Subclasses convert and
// add() the views (CastCache: a model's flat buffer, one kernel).
class ParameterCasts {
 public:
  ParameterCasts(const ParameterCasts&) = delete;
  ParameterCasts& operator=(const ParameterCasts&) = delete;
  // The active set of this thread, or null.
  static const ParameterCasts* current();
  DType dtype() const { return dtype_; }
  // param in dtype(), or null when the set does not hold it.
  const Tensor* find(const Tensor& param) const;

 protected:
  explicit ParameterCasts(DType dtype);
  ~ParameterCasts();
  // `view` (same shape, dtype()) is param's converted value.
  void add(const Tensor& param, Tensor view);

 private:
  DType dtype_;
  std::vector<std::pair<const void*, Tensor>> views_;  // parameter identity -> view
  const ParameterCasts* previous_;
};

}  // namespace dsc
