// The framework's layers. Every layer computes in its input's dtype: under mixed precision the
// input is f16 and the ops cast the f32 master parameters (differentiably) to f16 for the compute
// (core/mixed_precision.h), so their gradients arrive in f32. Shapes: activations NCHW, conv
// weights KCRS.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/mixed_precision.h"
#include "layers/module.h"
#include "layers/sync_batch_norm.h"

namespace dsc {

// Applied to a layer's output, like Keras' `activation=` argument.
enum class Activation { None, ReLU };

struct Conv2dOptions {
  int stride = 1;
  int padding = 0;
  bool bias = true;
  Activation activation = Activation::None;
};

// Normal convolution: weight [out, in, k, k], bias [out], then the activation.
class Conv2d : public Module {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, Conv2dOptions opt, std::mt19937_64& rng);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Conv2d"; }
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int in_, out_, kernel_;
  Conv2dOptions opt_;
};

// Depthwise convolution (one k x k filter per channel): weight [C, 1, k, k], bias [C] if asked,
// then the activation.
class DepthwiseConv2d : public Module {
 public:
  DepthwiseConv2d(int channels, int kernel, Conv2dOptions opt, std::mt19937_64& rng);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "DepthwiseConv2d"; }
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int channels_, kernel_;
  Conv2dOptions opt_;
};

// Pointwise (1x1) convolution: weight [out, in, 1, 1], bias [out] if asked.
class PointwiseConv2d : public Module {
 public:
  PointwiseConv2d(int in_channels, int out_channels, bool bias, std::mt19937_64& rng);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "PointwiseConv2d"; }
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int in_, out_;
  bool has_bias_;
};

// Depthwise k x k (no bias) then pointwise 1x1 (bias if opt.bias), then the activation, like
// Keras' SeparableConv2D: one fused op (ops::depsep_conv2d), so on the CPU the depthwise output
// never leaves the cache. The children hold the parameters ("depthwise.weight",
// "pointwise.weight", "pointwise.bias").
class DepSepConv2d : public Module {
 public:
  DepSepConv2d(int in_channels, int out_channels, int kernel, Conv2dOptions opt,
               std::mt19937_64& rng);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "DepSepConv2d"; }
  std::string describe() const override;
  std::shared_ptr<DepthwiseConv2d> depthwise;
  std::shared_ptr<PointwiseConv2d> pointwise;

 private:
  Conv2dOptions opt_;
};

struct BatchNormOptions {
  float momentum = 0.99f;  // Keras convention: running = momentum * running + (1 - momentum) * batch
  float eps = 1e-3f;
};

// Batch normalisation over N, H, W per channel; gamma/beta trainable, running mean/var buffers.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int channels, BatchNormOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "BatchNorm2d"; }
  std::string describe() const override;
  // Data-parallel training with --sync-bn: training-mode statistics over every rank's batch,
  // summed by `allreduce_sum` (layers/sync_batch_norm.h); an empty function: this batch only.
  void set_sync(AllreduceSum allreduce_sum) { sync_ = std::move(allreduce_sum); }
  Tensor gamma, beta, running_mean, running_var;

 private:
  int channels_;
  BatchNormOptions opt_;
  AllreduceSum sync_;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return ops::relu(x); }
  std::string name() const override { return "ReLU"; }
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int kernel, int stride = 0) : kernel_(kernel), stride_(stride ? stride : kernel) {}
  Tensor forward(const Tensor& x) override { return ops::max_pool2d(x, kernel_, stride_); }
  std::string name() const override { return "MaxPool2d"; }
  std::string describe() const override;

 private:
  int kernel_, stride_;
};

// [N, C, H, W] -> [N, C]: each channel's mean over its H x W plane (ops::global_avg_pool2d), the
// usual head of a network before its Linear classifier; no parameters.
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override { return ops::global_avg_pool2d(x); }
  std::string name() const override { return "GlobalAvgPool2d"; }
};

// [N, ...] -> [N, prod(...)] (NCHW order).
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Flatten"; }
};

// y = x W^T + b: weight [out, in], bias [out].
class Linear : public Module {
 public:
  Linear(int in_features, int out_features, std::mt19937_64& rng, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Linear"; }
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int in_, out_;
};

// Children applied in order.
class Sequential : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Sequential"; }
  template <class M> std::shared_ptr<M> add(std::string name, std::shared_ptr<M> m) {
    return register_module(std::move(name), std::move(m));
  }
};

// Mixed precision: the parameters of a model held in ONE flat f32 buffer (the optimizer's
// ParameterBuffer values) converted to `dtype` by one cast kernel over the whole buffer, instead
// of one per parameter and forward. While the cache is alive, the ops (through compute_view,
// core/mixed_precision.h) use views of that copy on this thread (with the cast's gradient rule).
// Make one per forward pass, after the last update of the parameters: it is a snapshot.
// Parameters outside `flat` are cast one by one.
class CastCache : public ParameterCasts {
 public:
  CastCache(const Module& model, const Tensor& flat, DType dtype);
  const Tensor& converted() const { return converted_; }  // the whole flat buffer, converted

 private:
  Tensor converted_;
};

}  // namespace dsc
