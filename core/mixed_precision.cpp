// Parameters in the compute dtype (see mixed_precision.h): compute_view and the thread's active
// ParameterCasts. Tested in tests/core/test_amp.cpp and test_models.cpp.
#include "core/mixed_precision.h"

#include "core/error.h"
#include "core/ops.h"

namespace dsc {

namespace {
thread_local const ParameterCasts* t_parameter_casts = nullptr;
}

Tensor compute_view(const Tensor& param, const Tensor& x) {
  if (!param.defined() || param.dtype() == x.dtype()) return param;
  if (const ParameterCasts* casts = ParameterCasts::current(); casts && casts->dtype() == x.dtype())
    if (const Tensor* v = casts->find(param)) return ops::cast_computed(param, *v);
  return ops::cast(param, x.dtype());
}

bool is_mixed_precision_pair(const Tensor& input, const Tensor& param) {
  return input.defined() && param.defined() && input.dtype() == DType::F16 &&
         param.dtype() == DType::F32 && input.device() == param.device();
}

Tensor param_for_input(const Tensor& param, const Tensor& input) {
  return is_mixed_precision_pair(input, param) ? compute_view(param, input) : param;
}

ParameterCasts::ParameterCasts(DType dtype) : dtype_(dtype), previous_(t_parameter_casts) {
  t_parameter_casts = this;
}

ParameterCasts::~ParameterCasts() { t_parameter_casts = previous_; }

const ParameterCasts* ParameterCasts::current() { return t_parameter_casts; }

const Tensor* ParameterCasts::find(const Tensor& param) const {
  for (const auto& [id, view] : views_)
    if (id == param.id()) return &view;
  return nullptr;
}

void ParameterCasts::add(const Tensor& param, Tensor view) {
  DSC_CHECK(
      view.shape() == param.shape() && view.dtype() == dtype_ && view.device() == param.device(),
      "ParameterCasts: ", view.str(), " is not ", param.str(), " in ", dtype_name(dtype_));
  views_.emplace_back(param.id(), std::move(view));
}

}  // namespace dsc
