// Dynamic loss scaling (see loss_scaler.h). Tested in tests/core/test_amp.cpp.
#include "optim/loss_scaler.h"

#include <cmath>

#include "core/backend.h"
#include "core/error.h"

namespace dsc {

LossScaler::LossScaler(LossScalerOptions opt) : opt_(opt), scale_(opt.init_scale) {
  DSC_CHECK(opt.init_scale > 0 && std::isfinite(opt.init_scale) && opt.growth > 1 &&
                opt.backoff > 0 && opt.backoff < 1 && opt.growth_interval > 0,
            "LossScaler: invalid options (need a finite init_scale > 0, growth > 1, backoff in "
            "(0, 1), growth_interval > 0)");
}

bool LossScaler::found_inf(const Tensor& grads) const {
  Tensor flag = Tensor::zeros({1}, DType::F32, grads.device());
  kernels(grads.device()).check_finite(grads, flag);
  return flag.item() != 0.0;
}

bool LossScaler::update(bool found_inf) {
  if (!opt_.enabled) return true;  // disabled: nothing is ever skipped (ATen)
  if (found_inf) {
    scale_ *= opt_.backoff;
    tracker_ = 0;
    ++skipped_;
    return false;
  }
  if (++tracker_ >= opt_.growth_interval) {
    const float grown = scale_ * opt_.growth;
    if (std::isfinite(grown)) scale_ = grown;
    tracker_ = 0;
  }
  return true;
}

}  // namespace dsc
