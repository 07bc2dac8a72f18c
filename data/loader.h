// The background batch loader: turns a Dataset into float32 batches on its own thread, a few
// batches ahead of the training loop.
//
// Output layout: images [size, 3, 32, 32] float32, NCHW, contiguous; labels [size] int32.
// Normalisation: kScale x / 127.5 - 1 (the seed's recipe, the default); kStandardize
// (x / 255 - mean[c]) / std[c] with CIFAR-10's train statistics by default. Augmentation (off by
// default): pad 4 pixels of value 0 (black, i.e. before normalisation, as torchvision's
// RandomCrop(32, padding=4)) on every side, take a random 32x32 crop, flip left-right with
// probability 1/2. The order of an epoch and every augmentation draw are deterministic functions
// of (seed, epoch) -- independent of timing and of how many batches the consumer takes.
//
// Usage:
//   BatchLoader loader(dataset, options);  // `dataset` must outlive the loader
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     for (BatchView b; loader.next(b);) train_step(b.images, b.labels, b.size);
//     spdlog::info("waited {} s for data", loader.wait_seconds());
//   }
// A view stays valid until the next call to next() or start_epoch(), or the loader's destruction.
// Destroying the loader mid-epoch is fine: the worker thread is stopped and joined.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace dsc::data {

enum class Normalization { kScale, kStandardize };

struct LoaderOptions {
  int batch_size = 128;
  uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;  // drop the last batch when it is smaller than batch_size
  Normalization normalization = Normalization::kScale;
  std::array<float, kChannels> mean = {0.4914f, 0.4822f, 0.4465f};  // kStandardize only
  std::array<float, kChannels> std = {0.2470f, 0.2435f, 0.2616f};
  bool augment = false;  // random crop (4-pixel zero padding) + random horizontal flip
  int depth = 3;         // batches in the ring (2..8)
  // Data-parallel training (train/distributed.h): batch_size is the global batch, and this loader
  // yields only slice `shard` of `shards` of every global batch: images [shard * s / shards,
  // (shard + 1) * s / shards) of a global batch of s, with the same augmentation draws as one
  // loader of the whole batch. Every shard's loader has the same order (same seed).
  int shard = 0, shards = 1;
};

struct BatchView {
  const float* images = nullptr;  // [size, 3, 32, 32]
  const int32_t* labels = nullptr;
  int size = 0;
  int64_t index = 0;    // batch number within the epoch
  int global_size = 0;  // the whole batch's size, all shards together (= size for one shard)
};

// uint8 -> float table of one channel for each channel under `options`' normalisation.
using NormalizeTable = std::array<std::array<float, 256>, kChannels>;
NormalizeTable make_normalize_table(const LoaderOptions& options);

// The image order of epoch `epoch`: a permutation of 0..n-1 (identity when shuffle is off).
// A Fisher-Yates shuffle driven by SplitMix64, so it is the same on every platform.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Converts the images `indices` of `dataset` into `images` / `labels` (the loader's per-batch
// work, exposed for tests and benchmarks). `augment_seed` drives the crop/flip draws when
// options.augment is set; `draws_before` draws are skipped first (those of the images before
// `indices` in their batch, for a shard of it).
void make_batch(const Dataset& dataset, std::span<const int64_t> indices,
                const NormalizeTable& table, bool augment, uint64_t augment_seed, float* images,
                int32_t* labels, int64_t draws_before = 0);

class BatchLoader {
 public:
  BatchLoader(const Dataset& dataset, const LoaderOptions& options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts (or restarts) producing the batches of `epoch`, from batch `first_batch` on (a run
  // resumed mid-epoch: the batches are the same as an uninterrupted epoch's from there);
  // invalidates the current view and discards batches prepared before. Resets wait_seconds().
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch, false when the epoch is done. Throws std::logic_error before
  // the first start_epoch(), and rethrows an error raised on the worker thread.
  bool next(BatchView& batch);

  int64_t batches_per_epoch() const { return num_batches_; }
  int64_t size() const { return dataset_.n; }
  const LoaderOptions& options() const { return options_; }
  // Seconds the consumer spent blocked in next() since the last start_epoch().
  double wait_seconds() const;

 private:
  struct Slot {
    std::vector<float> images;
    std::vector<int32_t> labels;
    int size = 0, global_size = 0;
  };
  void run();

  const Dataset& dataset_;
  const LoaderOptions options_;
  const NormalizeTable table_;
  int64_t num_batches_ = 0;
  std::vector<Slot> slots_;

  mutable std::mutex mutex_;             // guards everything below
  std::condition_variable produced_cv_;  // consumer waits: a batch is ready
  std::condition_variable space_cv_;     // worker waits: a slot is free, new epoch, or stop
  bool stop_ = false;
  bool started_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch; stale batches are discarded
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t next_to_fill_ = 0;  // next batch index the worker will produce
  int64_t ready_ = 0;         // batches [0, ready_) of the epoch are complete
  int64_t consumed_ = 0;      // batches handed to the consumer
  int64_t released_ = 0;      // batches the consumer is done with (slots free for reuse)
  double wait_seconds_ = 0;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace dsc::data
