// Optimizer updates, CPU (see optimizer.h for the exact arithmetic).
#include <cmath>

#include "core/cpu/optimizer.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int64_t step,
               float grad_scale) {
  const double t = static_cast<double>(step);
  const float lr_t =
      static_cast<float>(lr * std::sqrt(1.0 - std::pow(beta2, t)) / (1.0 - std::pow(beta1, t)));
  const float inv_scale = 1.0f / grad_scale;
  const float decay = lr * weight_decay;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * inv_scale;
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    params[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps) + decay * params[i];
  }
}

void sgd_step(float* params, const float* grads, float* buf, int64_t n, float lr, float momentum,
              bool nesterov, float weight_decay, float grad_scale) {
  const float inv_scale = 1.0f / grad_scale;
  const float decay = lr * weight_decay;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * inv_scale;
    float d = g;
    if (momentum != 0.0f) {
      buf[i] = momentum * buf[i] + g;
      d = nesterov ? g + momentum * buf[i] : buf[i];
    }
    params[i] -= lr * d + decay * params[i];
  }
}

}  // namespace dsc::cpu

// ---- kernel-table entries (core/kernel_list.h): tensors in, the loops above ---------------------

namespace dsc::cpu {
namespace {

// A one-element f32 tensor's value (the optimizer's device-resident inputs; here host memory).
float scalar_of(const Tensor& t) {
  DSC_CHECK(t.numel() == 1 && t.dtype() == DType::F32, "expected one f32 element, got ", t.str());
  return t.data<float>()[0];
}

}  // namespace

void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamParams& p) {
  if (p.found_inf && scalar_of(*p.found_inf) != 0.0f) return;  // skipped: nothing changes
  const int64_t step = p.step_count ? int64_t(scalar_of(*p.step_count)) + 1 : p.step;
  cpu::adam_step(params.data<float>(), grads.data<float>(), m.data<float>(), v.data<float>(),
                 params.numel(), p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, step,
                 p.scale ? scalar_of(*p.scale) : p.grad_scale);
  if (p.step_count) p.step_count->data<float>()[0] += 1.0f;
}

void sgd_step(Tensor& params, const Tensor& grads, Tensor& buf, const SgdParams& p) {
  if (p.found_inf && scalar_of(*p.found_inf) != 0.0f) return;
  cpu::sgd_step(params.data<float>(), grads.data<float>(), buf.data<float>(), params.numel(), p.lr,
                p.momentum, p.nesterov, p.weight_decay,
                p.scale ? scalar_of(*p.scale) : p.grad_scale);
  if (p.step_count) p.step_count->data<float>()[0] += 1.0f;
}

void update_loss_scale(Tensor& state, const Tensor& found_inf, const LossScaleParams& p) {
  DSC_CHECK(state.numel() == 3 && state.dtype() == DType::F32,
            "update_loss_scale: state must be f32 [3], got ", state.str());
  float* s = state.data<float>();
  cpu::update_loss_scale(s[0], s[1], s[2], scalar_of(found_inf) != 0.0f, p.growth, p.backoff,
                         p.growth_interval);
}

}  // namespace dsc::cpu
