// Optimizer updates over one flat f32 parameter buffer, CPU (the CUDA versions are fused kernels
// with the same arithmetic). Tested against hand-computed steps in tests/core/test_optim.cpp.
//
// Adam follows Keras (the seed's optimizer): with t the 1-based step and g = grad / grad_scale,
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);  p -= lr_t m / (sqrt(v) + eps) + lr wd p
// (eps is Kingma & Ba's "epsilon hat"; wd is decoupled weight decay, AdamW-style).
// SGD: buf = momentum buf + g; d = nesterov ? g + momentum buf : buf; p -= lr d + lr wd p.
// update_loss_scale is shared with the CUDA kernel (core/cuda/optimizer.cu includes this header).
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define DSC_HOST_DEVICE __host__ __device__
#else
#define DSC_HOST_DEVICE
#endif

namespace dsc::cpu {

void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int64_t step,
               float grad_scale);
void sgd_step(float* params, const float* grads, float* buf, int64_t n, float lr, float momentum,
              bool nesterov, float weight_decay, float grad_scale);

// Dynamic loss scaling, ATen's rule: on an overflow scale *= backoff, tracker = 0, skipped += 1;
// otherwise tracker += 1, and at growth_interval scale *= growth (unless that is inf), tracker = 0.
// The counters are floats (exact to 2^24) so that the state fits one f32 tensor on any device.
DSC_HOST_DEVICE inline void update_loss_scale(float& scale, float& tracker, float& skipped,
                                              bool found_inf, float growth, float backoff,
                                              int64_t growth_interval) {
  if (found_inf) {
    scale *= backoff;
    tracker = 0.0f;
    skipped += 1.0f;
    return;
  }
  tracker += 1.0f;
  if (tracker >= float(growth_interval)) {
    const float grown = scale * growth;
    if (grown <= 3.4028234663852886e38f) scale = grown;  // finite (no <cmath> in device code)
    tracker = 0.0f;
  }
}

}  // namespace dsc::cpu
