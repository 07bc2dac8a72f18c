// Optimizer updates over one flat f32 parameter buffer, CPU (the CUDA versions are fused kernels
// with the same arithmetic). Tested against hand-computed steps in tests/core/test_optim.cpp.
//
// Adam follows Keras (the seed's optimizer): with t the 1-based step and g = grad / grad_scale,
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);  p -= lr_t m / (sqrt(v) + eps) + lr wd p
// (eps is Kingma & Ba's "epsilon hat"; wd is decoupled weight decay, AdamW-style).
// SGD: buf = momentum buf + g; d = nesterov ? g + momentum buf : buf; p -= lr d + lr wd p.
#pragma once

#include <cstdint>

namespace dsc::cpu {

void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int64_t step,
               float grad_scale);
void sgd_step(float* params, const float* grads, float* buf, int64_t n, float lr, float momentum,
              bool nesterov, float weight_decay, float grad_scale);

}  // namespace dsc::cpu
