// Batches as device tensors, the device tally and evaluation (see evaluate.h).
#include "train/evaluate.h"

#include <algorithm>
#include <optional>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"
#include "layers/layers.h"

namespace dsc {

void copy_batch(const data::BatchView& b, Tensor& images, Tensor& labels) {
  const KernelTable& k = kernels(images.device());
  k.copy_bytes(images.raw(), images.device(), b.images, Device::CPU, images.nbytes());
  k.copy_bytes(labels.raw(), labels.device(), b.labels, Device::CPU, labels.nbytes());
}

BatchTensors to_tensors(const data::BatchView& b, Device device, DType compute) {
  BatchTensors t;
  t.images = Tensor::empty({b.size, data::kChannels, data::kHeight, data::kWidth}, DType::F32, device);
  t.labels = Tensor::empty({b.size}, DType::I32, device);
  copy_batch(b, t.images, t.labels);
  if (compute != DType::F32) t.images = t.images.to(compute);
  return t;
}

DeviceTally::DeviceTally(Device device)
    : device_(device),
      loss_sum_(Tensor::zeros({1}, DType::F32, device)),
      correct_(Tensor::zeros({1}, DType::I32, device)) {}

void DeviceTally::add_on_device(const Tensor& loss, const Tensor& logits, const Tensor& labels,
                                int64_t batch) {
  const KernelTable& k = kernels(device_);
  k.axpy(loss, double(batch), loss_sum_);
  k.count_correct(logits, labels, correct_);  // adds to correct_
}

void DeviceTally::reset() {
  loss_sum_.fill_(0.0);
  correct_.fill_(0.0);
  seen_ = 0;
}

double DeviceTally::mean_loss() const { return seen_ ? loss_sum_.item() / double(seen_) : 0.0; }
double DeviceTally::accuracy() const { return seen_ ? correct_.item() / double(seen_) : 0.0; }

EvalResult evaluate(Module& model, const data::Dataset& ds, int64_t batch,
                    data::Normalization normalization, Device device, DType compute,
                    const Tensor& params) {
  NoGradGuard no_grad;
  model.eval();
  std::optional<CastCache> cast_once;
  if (compute != params.dtype()) cast_once.emplace(model, params, compute);
  data::LoaderOptions lo;
  lo.batch_size = std::min<int64_t>(batch, ds.n);
  lo.shuffle = false;
  lo.normalization = normalization;
  data::BatchLoader loader(ds, lo);
  loader.start_epoch(0);
  DeviceTally tally(device);
  for (data::BatchView b; loader.next(b);) {
    BatchTensors t = to_tensors(b, device, compute);
    Tensor logits = model.forward(t.images);
    tally.add(ops::cross_entropy(logits, t.labels), logits, t.labels, b.size);
  }
  model.train();
  return {tally.mean_loss(), tally.accuracy()};
}

}  // namespace dsc
