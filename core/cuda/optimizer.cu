// Fused optimizer updates over one flat f32 parameter buffer on the GPU, with exactly the
// arithmetic of core/cpu/optimizer_cpu.cpp (see core/cpu/optimizer.h): params, grads, m, v, buf
// are f32 [n]; the step-dependent scalars (Adam's lr_t, 1 / grad_scale, lr * weight_decay) are
// computed in the same precision as the CPU code — on the host from host values, or, when the
// caller passes device tensors (found_inf, scale, Adam's step count; see core/backend.h), by each
// block's first thread from those — and each element is updated by one thread in f32. A set
// found_inf makes every block return at once. Gradients are read, never modified. Also the loss
// scale's update (one thread, core/cpu/optimizer.h's rule). Tested against the CPU backend (one and
// several steps, with loss-scale unscaling, weight decay and device-resident inputs) in
// tests/cuda/test_cuda_kernels.cpp.
#include <cmath>

#include "core/cpu/optimizer.h"
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

// Device-resident inputs of one update (null: the host value applies).
struct DeviceInputs {
  const float* found_inf = nullptr;
  const float* scale = nullptr;
  const float* step_count = nullptr;  // Adam only
};

// Per block, by thread 0: whether to skip, and the scalars from the device inputs.
struct BlockScalars {
  bool skip;
  float lr_t, inv_scale;
};

__device__ void block_scalars(const DeviceInputs& in, float lr, float beta1, float beta2,
                              float lr_t_host, float inv_scale_host, BlockScalars* out) {
  if (threadIdx.x == 0) {
    out->skip = in.found_inf != nullptr && *in.found_inf != 0.0f;
    out->inv_scale = in.scale ? 1.0f / *in.scale : inv_scale_host;
    if (in.step_count) {  // as cpu::adam_step, in double
      const double t = double(*in.step_count) + 1.0;
      out->lr_t = float(double(lr) * sqrt(1.0 - pow(double(beta2), t)) /
                        (1.0 - pow(double(beta1), t)));
    } else {
      out->lr_t = lr_t_host;
    }
  }
  __syncthreads();
}

__global__ void adam_kernel(float* params, const float* grads, float* m, float* v, int64_t n,
                            float lr, float lr_t_host, float beta1, float beta2, float eps,
                            float decay, float inv_scale_host, DeviceInputs in) {
  __shared__ BlockScalars sc;
  block_scalars(in, lr, beta1, beta2, lr_t_host, inv_scale_host, &sc);
  if (sc.skip) return;
  const float lr_t = sc.lr_t, inv_scale = sc.inv_scale;
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

// The count of applied updates, after the update (one thread).
__global__ void count_step_kernel(float* step_count, const float* found_inf) {
  if (found_inf == nullptr || *found_inf == 0.0f) *step_count += 1.0f;
}

__global__ void sgd_kernel(float* params, const float* grads, float* buf, int64_t n, float lr,
                           float momentum, bool nesterov, float decay, float inv_scale_host,
                           DeviceInputs in) {
  __shared__ BlockScalars sc;
  block_scalars(in, lr, 0.0f, 0.0f, 0.0f, inv_scale_host, &sc);
  if (sc.skip) return;
  const float inv_scale = sc.inv_scale;
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

__global__ void update_loss_scale_kernel(float* state, const float* found_inf, float growth,
                                         float backoff, int64_t interval) {
  cpu::update_loss_scale(state[0], state[1], state[2], *found_inf != 0.0f, growth, backoff,
                         interval);
}

const float* scalar_ptr(const Tensor* t, const char* op, const char* what) {
  if (!t) return nullptr;
  DSC_CHECK(t->numel() == 1, op, ": ", what, " must have one element, got ", t->str());
  return dptr<float>(*t);
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
  // Host scalars exactly as in cpu::adam_step.
  const double t = static_cast<double>(p.step);
  const float lr_t = static_cast<float>(p.lr * std::sqrt(1.0 - std::pow(p.beta2, t)) /
                                        (1.0 - std::pow(p.beta1, t)));
  const float inv_scale = 1.0f / p.grad_scale;
  const float decay = p.lr * p.weight_decay;
  DeviceInputs in;
  in.found_inf = scalar_ptr(p.found_inf, "adam_step", "found_inf");
  in.scale = scalar_ptr(p.scale, "adam_step", "scale");
  float* count = p.step_count ? dptr<float>(*p.step_count) : nullptr;
  if (p.step_count) scalar_ptr(p.step_count, "adam_step", "step_count");
  in.step_count = count;
  if (n > 0) {
    launch(adam_kernel, grid_for(n), kThreads)(dptr<float>(params), dptr<float>(grads),
                                               dptr<float>(m), dptr<float>(v), n, p.lr, lr_t,
                                               p.beta1, p.beta2, p.eps, decay, inv_scale, in);
  }
  if (count) {
    launch(count_step_kernel, 1, 1)(count, in.found_inf);
  }
}

void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const SgdParams& p) {
  check_flat("sgd_step", {&params, &grads, &momentum_buf});
  const int64_t n = params.numel();
  const float inv_scale = 1.0f / p.grad_scale;
  const float decay = p.lr * p.weight_decay;
  DeviceInputs in;
  in.found_inf = scalar_ptr(p.found_inf, "sgd_step", "found_inf");
  in.scale = scalar_ptr(p.scale, "sgd_step", "scale");
  if (n > 0) {
    launch(sgd_kernel, grid_for(n), kThreads)(dptr<float>(params), dptr<float>(grads),
                                              dptr<float>(momentum_buf), n, p.lr, p.momentum,
                                              p.nesterov, decay, inv_scale, in);
  }
  if (p.step_count) {
    scalar_ptr(p.step_count, "sgd_step", "step_count");
    launch(count_step_kernel, 1, 1)(dptr<float>(*p.step_count), in.found_inf);
  }
}

void update_loss_scale(Tensor& state, const Tensor& found_inf, const LossScaleParams& p) {
  DSC_CHECK(state.numel() == 3, "update_loss_scale: state must be f32 [3], got ", state.str());
  launch(update_loss_scale_kernel, 1, 1)(dptr<float>(state),
                                         scalar_ptr(&found_inf, "update_loss_scale", "found_inf"),
                                         p.growth, p.backoff, p.growth_interval);
}

}  // namespace dsc::cuda
