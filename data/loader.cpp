// The background batch loader (see loader.h for the layouts and the usage). One worker thread
// fills a ring of `depth` reusable batch buffers; the consumer takes them in order. uint8 -> float
// goes through a 256-entry table per channel; augmentation is a 4-pixel zero-padded random crop
// plus a random horizontal flip. Random numbers come from SplitMix64 seeded by (seed, epoch,
// batch), so the output does not depend on timing.
// Tested in tests/data/test_loader.cpp: every image once per epoch, reproducible shuffles, exact
// normalised values, every augmented image a crop/flip of its source, shutdown mid-epoch.
#include "data/loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace dsc::data {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A value in [0, n) (Lemire's multiply-shift; the bias is below n / 2^64).
uint64_t bounded(uint64_t& state, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(splitmix64(state)) * n) >> 64);
}

// A seed for stream (a, b) of `seed`.
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t s = seed;
  s = splitmix64(s) ^ a;
  s = splitmix64(s) ^ b;
  return splitmix64(s);
}

constexpr uint64_t kShuffleStream = 0x53485546464C45ull;  // "SHUFFLE"
constexpr uint64_t kAugmentStream = 0x4155474D454E54ull;  // "AUGMENT"
constexpr int kPad = 4;

// One image, normalised, no augmentation.
void convert_plain(const uint8_t* src, const NormalizeTable& table, float* dst) {
  for (int c = 0; c < kChannels; ++c) {
    const float* lut = table[c].data();
    const uint8_t* s = src + c * kPlaneBytes;
    float* d = dst + c * kPlaneBytes;
    for (int p = 0; p < kPlaneBytes; ++p) d[p] = lut[s[p]];
  }
}

// One image: output(y, x) = padded(y + oy, x' + ox) with x' = flip ? 31 - x : x, where padded is
// the source with kPad zero pixels on every side, so oy, ox in [0, 2 * kPad].
void convert_augmented(const uint8_t* src, const NormalizeTable& table, int oy, int ox, bool flip,
                       float* dst) {
  for (int c = 0; c < kChannels; ++c) {
    const float* lut = table[c].data();
    const float zero = lut[0];
    const uint8_t* plane = src + c * kPlaneBytes;
    for (int y = 0; y < kHeight; ++y) {
      float* d = dst + c * kPlaneBytes + y * kWidth;
      const int sy = y + oy - kPad;
      if (sy < 0 || sy >= kHeight) {
        std::fill(d, d + kWidth, zero);
        continue;
      }
      const uint8_t* row = plane + sy * kWidth;
      for (int x = 0; x < kWidth; ++x) {
        const int sx = (flip ? kWidth - 1 - x : x) + ox - kPad;
        d[x] = (sx >= 0 && sx < kWidth) ? lut[row[sx]] : zero;
      }
    }
  }
}

}  // namespace

NormalizeTable make_normalize_table(const LoaderOptions& options) {
  NormalizeTable table;
  for (int c = 0; c < kChannels; ++c) {
    for (int v = 0; v < 256; ++v) {
      const double x = v;
      table[c][v] = options.normalization == Normalization::kScale
                        ? static_cast<float>(x / 127.5 - 1.0)
                        : static_cast<float>((x / 255.0 - options.mean[c]) / options.std[c]);
    }
  }
  return table;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  uint64_t state = derive_seed(seed, kShuffleStream, static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[bounded(state, static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

void make_batch(const Dataset& dataset, std::span<const int64_t> indices,
                const NormalizeTable& table, bool augment, uint64_t augment_seed, float* images,
                int32_t* labels, int64_t draws_before) {
  uint64_t state = augment_seed;
  if (augment)
    for (int64_t k = 0; k < draws_before; ++k) bounded(state, 9 * 9 * 2);
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t i = indices[k];
    labels[k] = dataset.labels[i];
    float* dst = images + k * kImageBytes;
    if (!augment) {
      convert_plain(dataset.image(i), table, dst);
      continue;
    }
    const auto draw = static_cast<int>(bounded(state, 9 * 9 * 2));  // (oy, ox, flip)
    convert_augmented(dataset.image(i), table, draw % 9, (draw / 9) % 9, draw >= 81, dst);
  }
}

BatchLoader::BatchLoader(const Dataset& dataset, const LoaderOptions& options)
    : dataset_(dataset), options_(options), table_(make_normalize_table(options)) {
  if (options.batch_size < 1) {
    throw std::invalid_argument("BatchLoader: batch_size must be >= 1, got " +
                                std::to_string(options.batch_size));
  }
  if (options.depth < 2 || options.depth > 8) {
    throw std::invalid_argument("BatchLoader: depth must be 2..8, got " +
                                std::to_string(options.depth));
  }
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards) {
    throw std::invalid_argument("BatchLoader: shard " + std::to_string(options.shard) + " of " +
                                std::to_string(options.shards));
  }
  validate(dataset);
  const int64_t b = options.batch_size;
  num_batches_ = options.drop_last ? dataset.n / b : (dataset.n + b - 1) / b;
  slots_.resize(options.depth);
  const int64_t slice = (b + options.shards - 1) / options.shards;  // the largest shard
  for (auto& slot : slots_) {
    slot.images.resize(slice * kImageBytes);
    slot.labels.resize(slice);
  }
  worker_ = std::thread([this] { run(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  space_cv_.notify_all();
  produced_cv_.notify_all();
  worker_.join();
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  if (first_batch < 0 || first_batch > num_batches_)
    throw std::invalid_argument("BatchLoader::start_epoch: first batch " +
                                std::to_string(first_batch) + " of an epoch of " +
                                std::to_string(num_batches_) + " batches");
  auto order = std::make_shared<const std::vector<int64_t>>(
      epoch_order(dataset_.n, options_.seed, epoch, options_.shuffle));
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    started_ = true;
    epoch_ = epoch;
    order_ = std::move(order);
    ready_ = consumed_ = released_ = first_batch;
    wait_seconds_ = 0;
  }
  space_cv_.notify_all();
}

bool BatchLoader::next(BatchView& batch) {
  std::unique_lock lock(mutex_);
  if (!started_) throw std::logic_error("BatchLoader::next() called before start_epoch()");
  if (released_ != consumed_) {
    released_ = consumed_;  // the previous view is no longer used: its slot may be refilled
    space_cv_.notify_all();
  }
  if (error_) std::rethrow_exception(error_);
  if (consumed_ >= num_batches_) return false;
  if (ready_ <= consumed_) {
    const auto t0 = std::chrono::steady_clock::now();
    produced_cv_.wait(lock, [&] { return ready_ > consumed_ || error_ || stop_; });
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (error_) std::rethrow_exception(error_);
  }
  const int64_t b = consumed_++;
  const Slot& slot = slots_[b % slots_.size()];
  batch.images = slot.images.data();
  batch.labels = slot.labels.data();
  batch.size = slot.size;
  batch.global_size = slot.global_size;
  batch.index = b;
  return true;
}

double BatchLoader::wait_seconds() const {
  std::lock_guard lock(mutex_);
  return wait_seconds_;
}

void BatchLoader::run() {
  const int64_t depth = static_cast<int64_t>(slots_.size());
  const int64_t batch_size = options_.batch_size;
  std::unique_lock lock(mutex_);
  while (true) {
    space_cv_.wait(lock, [&] {
      return stop_ || (started_ && !error_ && ready_ < num_batches_ && ready_ < released_ + depth);
    });
    if (stop_) return;
    // Batch `b` of this generation goes to slot b % depth, which the consumer no longer holds:
    // it holds at most batches [released_, ready_) and b = ready_ < released_ + depth.
    const uint64_t generation = generation_;
    const int64_t b = ready_;
    const auto order = order_;
    const uint64_t augment_seed =
        derive_seed(options_.seed ^ kAugmentStream, static_cast<uint64_t>(epoch_), b);
    lock.unlock();
    Slot& slot = slots_[b % depth];
    const int64_t begin = b * batch_size;
    const int64_t count = std::min(batch_size, dataset_.n - begin);
    const int64_t lo = options_.shard * count / options_.shards;
    const int64_t hi = (options_.shard + 1) * count / options_.shards;
    std::exception_ptr error;
    try {
      make_batch(dataset_, std::span<const int64_t>(order->data() + begin + lo, hi - lo), table_,
                 options_.augment, augment_seed, slot.images.data(), slot.labels.data(), lo);
      slot.size = static_cast<int>(hi - lo);
      slot.global_size = static_cast<int>(count);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (generation != generation_) continue;  // start_epoch() came in meanwhile: discard
    if (error) {
      error_ = error;
      spdlog::error("batch loader: producing batch {} of epoch {} failed", b, epoch_);
    } else {
      ready_ = b + 1;
    }
    produced_cv_.notify_one();
  }
}

}  // namespace dsc::data
