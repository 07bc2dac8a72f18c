// Dynamic loss scaling (see loss_scaler.h); the rule itself is the table's update_loss_scale
// (core/cpu/optimizer.h, shared by the CPU and CUDA kernels). Tested in tests/core/test_amp.cpp.
#include "optim/loss_scaler.h"

#include <cmath>

#include "core/error.h"

namespace dsc {

LossScaler::LossScaler(LossScalerOptions opt, Device device) : opt_(opt) {
  DSC_CHECK(opt.init_scale > 0 && std::isfinite(opt.init_scale) && opt.growth > 1 &&
                opt.backoff > 0 && opt.backoff < 1 && opt.growth_interval > 0,
            "LossScaler: invalid options (need a finite init_scale > 0, growth > 1, backoff in "
            "(0, 1), growth_interval > 0)");
  state_ = Tensor::from({opt.init_scale, 0.0, 0.0}, {3}, DType::F32).to(device);
  scale_ = opt.enabled ? state_.slice0(0, 1) : Tensor::full({1}, 1.0, DType::F32, device);
  flag_ = Tensor::zeros({1}, DType::F32, device);
}

const Tensor& LossScaler::check(const Tensor& grads) {
  flag_.fill_(0.0);
  if (opt_.enabled) kernels(grads.device()).check_finite(grads, flag_);
  return flag_;
}

void LossScaler::update() {
  if (!opt_.enabled) return;
  kernels(state_.device())
      .update_loss_scale(state_, flag_,
                         LossScaleParams{opt_.growth, opt_.backoff, opt_.growth_interval});
}

float LossScaler::scale() const { return float(scale_.item()); }

bool LossScaler::found_inf(const Tensor& grads) const {
  Tensor flag = Tensor::zeros({1}, DType::F32, grads.device());
  kernels(grads.device()).check_finite(grads, flag);
  return flag.item() != 0.0;
}

bool LossScaler::update(bool found_inf) {
  if (!opt_.enabled) return true;  // disabled: nothing is ever skipped (ATen)
  flag_.fill_(found_inf ? 1.0 : 0.0);
  update();
  return !found_inf;
}

int64_t LossScaler::skipped() const {
  return static_cast<int64_t>(state_.to_vector()[2]);
}

int64_t LossScaler::growth_tracker() const {
  return static_cast<int64_t>(state_.to_vector()[1]);
}

}  // namespace dsc
