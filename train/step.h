// TrainStep: one training step of any model on one batch already on its device — forward, mean
// softmax cross-entropy, backward, optimizer update. Under mixed precision (compute dtype f16) the
// images are cast to f16, the f32 master parameters are cast once for the forward (CastCache), the
// loss is scaled before the backward, the gradients are checked for inf/NaN (the update is then
// skipped on the device) and the loss scale is updated. Every program that trains runs this one
// step: train (Trainer), train_steps, the benchmarks and the tests. Its device work never waits
// for the GPU, so a step graph can record it (core/graph.h).
// Tested through the training tests (tests/train, tests/core/test_amp.cpp) and, replayed from a
// step graph against eager steps bit for bit, in tests/cuda/test_cuda_graph.cpp.
#pragma once

#include "core/autograd.h"
#include "core/tensor.h"
#include "layers/module.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace dsc {

class StepProfiler;

// What a step leaves on the device: the mean loss (one f32 element) and the logits [N, classes].
struct StepResult {
  Tensor loss, logits;
};

// Data-parallel training (train/data_parallel.h): averages the gradients across processes. The
// step calls begin_backward before the backward, whose hook (if any) is installed during the
// backward to start parts of the average early, and reduce after it: the average is complete
// (on a GPU: queued) when reduce returns. Under mixed precision the step checks the averaged
// gradients for inf/NaN: an overflow on any rank is one in the sum, so every rank skips the step.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  // The factor this rank's loss is multiplied by before the backward (1: none).
  virtual double loss_weight() const { return 1.0; }
  virtual GradientHook* begin_backward() { return nullptr; }
  virtual void reduce(Tensor& grads) = 0;
};

class TrainStep {
 public:
  // The model's parameters must be the optimizer's (its flat f32 buffer); the scaler decides
  // whether the step is mixed precision (enabled) or not; compute is F32 or F16.
  TrainStep(Module& model, Optimizer& optimizer, LossScaler& scaler, DType compute);
  // images [N, C, H, W] f32 and labels [N] i32, on the model's device.
  StepResult operator()(const Tensor& images, const Tensor& labels);
  DType compute() const { return compute_; }
  // With a profiler (train/step_profiler.h) the step marks its rows and runs a Sequential model's
  // children one at a time, each under its own row; nullptr (the default): the plain step.
  void set_profiler(StepProfiler* p) { profiler_ = p; }
  // Several processes: the reducer runs in every step from now on (nullptr: none).
  void set_reducer(GradientReducer* reducer) { reducer_ = reducer; }

 private:
  Tensor forward_by_layer(const Tensor& x);

  Module& model_;
  Optimizer& optimizer_;
  LossScaler& scaler_;
  DType compute_;
  StepProfiler* profiler_ = nullptr;
  GradientReducer* reducer_ = nullptr;
};

}  // namespace dsc
