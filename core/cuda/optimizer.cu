// Fused optimizer updates over one flat f32 parameter buffer on the GPU, with exactly the
// arithmetic of core/ops/optimizer_cpu.cpp (see core/ops/optimizer.h): params, grads, m, v, buf
// are f32 [n]; the step-dependent scalars (Adam's lr_t, 1 / grad_scale, lr * weight_decay) are
// computed on the host in the same precision as the CPU code, and each element is updated by one
// thread in f32. Gradients are read, never modified. Tested against the CPU backend (one and
// several steps, with loss-scale unscaling and weight decay) in tests/cuda/test_cuda_kernels.cpp.
#include <cmath>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

__global__ void adam_kernel(float* params, const float* grads, float* m, float* v, int64_t n,
                            float lr_t, float beta1, float beta2, float eps, float decay,
                            float inv_scale) {
  DSC_GRID_STRIDE(i, n) {
    const float g = grads[i] * inv_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = params[i];
    params[i] = p - (lr_t * mi / (sqrtf(vi) + eps) + decay * p);
  }
}

__global__ void sgd_kernel(float* params, const float* grads, float* buf, int64_t n, float lr,
                           float momentum, bool nesterov, float decay, float inv_scale) {
  DSC_GRID_STRIDE(i, n) {
    const float g = grads[i] * inv_scale;
    float d = g;
    if (momentum != 0.0f) {
      const float b = momentum * buf[i] + g;
      buf[i] = b;
      d = nesterov ? g + momentum * b : b;
    }
    const float p = params[i];
    params[i] = p - (lr * d + decay * p);
  }
}

void check_flat(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor& first = **ts.begin();
  for (const Tensor* t : ts)
    DSC_CHECK(t->dtype() == DType::F32 && t->numel() == first.numel(), op,
              ": expected f32 buffers of one size, got ", t->str(), " and ", first.str());
}

}  // namespace

void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamParams& p) {
  check_flat("adam_step", {&params, &grads, &m, &v});
  const int64_t n = params.numel();
  if (n == 0) return;
  // Host scalars exactly as in cpu::adam_step.
  const double t = static_cast<double>(p.step);
  const float lr_t = static_cast<float>(p.lr * std::sqrt(1.0 - std::pow(p.beta2, t)) /
                                        (1.0 - std::pow(p.beta1, t)));
  const float inv_scale = 1.0f / p.grad_scale;
  const float decay = p.lr * p.weight_decay;
  adam_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(
      dptr<float>(params), dptr<float>(grads), dptr<float>(m), dptr<float>(v), n, lr_t, p.beta1,
      p.beta2, p.eps, decay, inv_scale);
  DSC_LAUNCH_CHECK("adam_kernel");
}

void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const SgdParams& p) {
  check_flat("sgd_step", {&params, &grads, &momentum_buf});
  const int64_t n = params.numel();
  if (n == 0) return;
  const float inv_scale = 1.0f / p.grad_scale;
  const float decay = p.lr * p.weight_decay;
  sgd_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(
      dptr<float>(params), dptr<float>(grads), dptr<float>(momentum_buf), n, p.lr, p.momentum,
      p.nesterov, decay, inv_scale);
  DSC_LAUNCH_CHECK("sgd_kernel");
}

}  // namespace dsc::cuda
