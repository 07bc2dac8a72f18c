// Pieces of a training loop that are not the step itself: batches from the loader as device
// tensors, running loss and accuracy kept on the device (DeviceTally), and evaluation of a model
// on a whole data set. Used by the Trainer (train/trainer.h); tested through it (tests/train).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "layers/module.h"

namespace dsc {

// Copies a loader batch into images [n, C, H, W] f32 and labels [n] i32 on their device. On a GPU
// the copy returns without waiting for the GPU (it overlaps the kernels queued before it).
void copy_batch(const data::BatchView& b, Tensor& images, Tensor& labels);

// A loader batch as new device tensors: images in `compute` dtype, labels i32.
struct BatchTensors {
  Tensor images, labels;
};
BatchTensors to_tensors(const data::BatchView& b, Device device, DType compute);

// Running sums of loss x batch size and of correct predictions, kept on the device: adding a
// batch launches two small kernels and never waits for the GPU; reading them synchronises, so
// that happens only when something is reported (the progress bar, the end of an epoch).
class DeviceTally {
 public:
  explicit DeviceTally(Device device);
  void add(const Tensor& loss, const Tensor& logits, const Tensor& labels, int64_t batch) {
    add_on_device(loss, logits, labels, batch);
    count(batch);
  }
  // The two halves of add(): the device work (what a step graph records) and the host count
  // (what runs on every step, replayed or not).
  void add_on_device(const Tensor& loss, const Tensor& logits, const Tensor& labels,
                     int64_t batch);
  void count(int64_t batch) { seen_ += batch; }
  // Zero again, in the same storage (a step graph keeps writing to it).
  void reset();
  double mean_loss() const;
  double accuracy() const;
  // Images counted so far, and the device sums as named tensors sharing the tally's storage: a
  // training checkpoint taken inside an epoch saves them, so a resumed epoch reports the same
  // running loss and accuracy as an uninterrupted one.
  int64_t seen() const { return seen_; }
  void set_seen(int64_t n) { seen_ = n; }
  std::vector<NamedTensor> state() const {
    return {{"tally.loss_sum", loss_sum_}, {"tally.correct", correct_}};
  }

 private:
  Device device_;
  Tensor loss_sum_, correct_;
  int64_t seen_ = 0;
};

struct EvalResult {
  double loss = 0, acc = 0;
};

// Mean loss and accuracy of `model` on every image of `ds` in eval mode without gradients, in
// batches of `batch`. params: the model's parameters in one flat f32 buffer (the optimizer's),
// cast once for the whole evaluation when `compute` is f16. The model is left in train mode.
EvalResult evaluate(Module& model, const data::Dataset& ds, int64_t batch,
                    data::Normalization normalization, Device device, DType compute,
                    const Tensor& params);

}  // namespace dsc
