// Optimizer updates, CPU (see optimizer.h for the exact arithmetic).
#include <cmath>

#include "core/cpu/optimizer.h"

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
