// Tests of the background batch loader: every image exactly once per epoch, batch sizes with and
// without drop_last, shuffles reproducible for (seed, epoch) and different across epochs, exact
// normalised values, augmented images that are a crop/flip of their source, views that stay
// valid while held, restart and shutdown mid-epoch, an epoch started mid-way (resume), and the
// single-thread conversion rate; shards of each batch for data-parallel training.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <set>
#include <thread>

#include "data/loader.h"
#include "data_test_util.h"

namespace dsc::data {
namespace {

namespace fs = std::filesystem;

// Inverse of the kScale table: the pixel that produced `v`.
int unscale(float v) { return static_cast<int>(std::lround((v + 1.0) * 127.5)); }

struct Epoch {
  std::vector<int64_t> ids;  // image ids in output order
  std::vector<int> sizes;    // batch sizes
  std::vector<float> first_values;
};

// Runs one epoch with kScale (no augmentation), checking every image against the data set.
Epoch run_epoch(BatchLoader& loader, const Dataset& d, int64_t epoch) {
  Epoch out;
  loader.start_epoch(epoch);
  CHECK(loader.wait_seconds() == 0.0);
  for (BatchView b; loader.next(b);) {
    CHECK(b.index == static_cast<int64_t>(out.sizes.size()));
    out.sizes.push_back(b.size);
    for (int k = 0; k < b.size; ++k) {
      const float* image = b.images + static_cast<int64_t>(k) * kImageBytes;
      const int64_t id = unscale(image[0]) | (unscale(image[1]) << 8);
      REQUIRE(id < d.n);
      out.ids.push_back(id);
      out.first_values.push_back(image[100]);
      CHECK(b.labels[k] == d.labels[id]);
      int mismatches = 0;
      for (int p = 0; p < kImageBytes; ++p) mismatches += unscale(image[p]) != d.image(id)[p];
      CHECK(mismatches == 0);
    }
  }
  CHECK(loader.wait_seconds() >= 0.0);
  return out;
}

TEST_CASE("loader: every image exactly once per epoch, last batch partial") {
  const Dataset d = testing::random_dataset(103, 10, 41);
  for (bool shuffle : {false, true}) {
    LoaderOptions options;
    options.batch_size = 16;
    options.shuffle = shuffle;
    BatchLoader loader(d, options);
    CHECK(loader.batches_per_epoch() == 7);
    const Epoch e = run_epoch(loader, d, 0);
    CHECK(e.sizes == std::vector<int>{16, 16, 16, 16, 16, 16, 7});
    CHECK(std::set<int64_t>(e.ids.begin(), e.ids.end()).size() == 103);
    if (!shuffle) CHECK(e.ids == epoch_order(103, 0, 0, false));
    if (shuffle) CHECK(e.ids == epoch_order(103, options.seed, 0, true));
    BatchView b;
    CHECK_FALSE(loader.next(b));  // stays done
  }
}

TEST_CASE("loader: drop_last drops only the partial batch") {
  const Dataset d = testing::random_dataset(103, 10, 42);
  LoaderOptions options;
  options.batch_size = 16;
  options.drop_last = true;
  options.depth = 2;
  BatchLoader loader(d, options);
  const Epoch e = run_epoch(loader, d, 3);
  CHECK(e.sizes == std::vector<int>(6, 16));
  CHECK(std::set<int64_t>(e.ids.begin(), e.ids.end()).size() == 96);
}

TEST_CASE("loader: shuffle is a function of (seed, epoch)") {
  const Dataset d = testing::random_dataset(200, 10, 43);
  LoaderOptions options;
  options.batch_size = 32;
  options.seed = 7;
  BatchLoader a(d, options), b(d, options);
  const Epoch a0 = run_epoch(a, d, 0), a1 = run_epoch(a, d, 1);
  CHECK(a0.ids != a1.ids);
  CHECK(run_epoch(b, d, 1).ids == a1.ids);  // same seed and epoch, other loader, other history
  CHECK(run_epoch(b, d, 0).ids == a0.ids);
  options.seed = 8;
  BatchLoader c(d, options);
  CHECK(run_epoch(c, d, 0).ids != a0.ids);
  // A fixed value: the order is the same on every platform and build (SplitMix64 +
  // Fisher-Yates, no std:: distributions).
  CHECK(epoch_order(10, 7, 0, true) == std::vector<int64_t>{8, 4, 6, 1, 5, 9, 3, 7, 0, 2});
}

TEST_CASE("loader: normalisation values are exact for known pixels") {
  Dataset d = testing::random_dataset(1, 1, 44);
  const int values[] = {0, 255, 51, 128, 1};
  for (int c = 0; c < kChannels; ++c) {
    for (int k = 0; k < 5; ++k)
      d.image(0)[c * kPlaneBytes + 10 + k] = static_cast<uint8_t>(values[k]);
  }
  LoaderOptions options;
  options.batch_size = 1;
  {
    BatchLoader loader(d, options);
    loader.start_epoch(0);
    BatchView b;
    REQUIRE(loader.next(b));
    for (int c = 0; c < kChannels; ++c) {
      const float* v = b.images + c * kPlaneBytes + 10;
      CHECK(v[0] == -1.0f);
      CHECK(v[1] == 1.0f);
      CHECK(v[2] == -0.6f);
      CHECK(v[3] == static_cast<float>(128 / 127.5 - 1));
      CHECK(v[3] == doctest::Approx(0.003921568627).epsilon(1e-6));
      CHECK(v[4] == doctest::Approx(-0.992156862745).epsilon(1e-7));
    }
  }
  options.normalization = Normalization::kStandardize;
  BatchLoader loader(d, options);
  loader.start_epoch(0);
  BatchView b;
  REQUIRE(loader.next(b));
  const double mean[] = {0.4914, 0.4822, 0.4465}, sd[] = {0.2470, 0.2435, 0.2616};
  for (int c = 0; c < kChannels; ++c) {
    const float* v = b.images + c * kPlaneBytes + 10;
    for (int k = 0; k < 5; ++k) {
      CHECK(v[k] == doctest::Approx((values[k] / 255.0 - mean[c]) / sd[c]).epsilon(1e-6));
    }
  }
  CHECK(b.images[10] == doctest::Approx(-1.989473684).epsilon(1e-6));  // (0 - .4914) / .2470
}

// The (oy, ox, flip) for which `out` is the crop/flip of `src` (see loader.h), or {-1, -1, -1}.
std::array<int, 3> find_transform(const float* out, const uint8_t* src, const NormalizeTable& t) {
  for (int flip = 0; flip < 2; ++flip) {
    for (int oy = 0; oy <= 8; ++oy) {
      for (int ox = 0; ox <= 8; ++ox) {
        bool match = true;
        for (int c = 0; c < kChannels && match; ++c) {
          for (int y = 0; y < kHeight && match; ++y) {
            for (int x = 0; x < kWidth && match; ++x) {
              const int sy = y + oy - 4, sx = (flip ? 31 - x : x) + ox - 4;
              const bool inside = sy >= 0 && sy < 32 && sx >= 0 && sx < 32;
              const float want = t[c][inside ? src[c * kPlaneBytes + sy * kWidth + sx] : 0];
              match = out[c * kPlaneBytes + y * kWidth + x] == want;
            }
          }
        }
        if (match) return {oy, ox, flip};
      }
    }
  }
  return {-1, -1, -1};
}

TEST_CASE("loader: augmented images are crops with zero padding and flips of their source") {
  const Dataset d = testing::random_dataset(96, 10, 45);
  LoaderOptions options;
  options.batch_size = 32;
  options.augment = true;
  options.normalization = Normalization::kStandardize;  // zero padding differs from zero output
  const NormalizeTable table = make_normalize_table(options);
  BatchLoader loader(d, options), again(d, options);
  loader.start_epoch(2);
  again.start_epoch(2);
  const std::vector<int64_t> order = epoch_order(d.n, options.seed, 2, true);
  int flips = 0, shifted = 0;
  for (BatchView b, b2; loader.next(b);) {
    REQUIRE(again.next(b2));
    CHECK(std::equal(b.images, b.images + b.size * kImageBytes, b2.images));  // reproducible
    for (int k = 0; k < b.size; ++k) {
      const int64_t src = order[b.index * options.batch_size + k];
      CHECK(b.labels[k] == d.labels[src]);
      const auto tf = find_transform(b.images + k * kImageBytes, d.image(src), table);
      REQUIRE(tf[0] >= 0);
      flips += tf[2];
      shifted += tf[0] != 4 || tf[1] != 4;
    }
  }
  CHECK(flips > 20);  // 96 fair coins: 48 expected
  CHECK(flips < 76);
  CHECK(shifted > 70);  // 80 of 81 offsets move the image
}

TEST_CASE("loader: a held view is not overwritten, restart and stop mid-epoch") {
  const Dataset d = testing::random_dataset(300, 10, 46);
  LoaderOptions options;
  options.batch_size = 8;
  options.depth = 2;
  BatchLoader loader(d, options);
  loader.start_epoch(0);
  BatchView b;
  REQUIRE(loader.next(b));
  const std::vector<float> copy(b.images, b.images + b.size * kImageBytes);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the worker fills what it may
  CHECK(std::equal(copy.begin(), copy.end(), b.images));
  REQUIRE(loader.next(b));
  REQUIRE(loader.next(b));

  const Epoch full = run_epoch(loader, d, 0);  // restart mid-epoch: a complete fresh epoch
  CHECK(full.ids == epoch_order(d.n, options.seed, 0, true));

  for (int round = 0; round < 20; ++round) {  // destroy with the worker busy or blocked
    BatchLoader early(d, options);
    early.start_epoch(round);
    if (round % 2) REQUIRE(early.next(b));
  }
  BatchLoader never_started(d, options);
  CHECK_THROWS_AS(never_started.next(b), std::logic_error);
  CHECK_THROWS_AS(BatchLoader(d, LoaderOptions{.batch_size = 0}), std::invalid_argument);
}

TEST_CASE("loader: an epoch started at batch k gives the same batches as an uninterrupted one") {
  // What a run resumed mid-epoch relies on: order and augmentation draws from (seed, epoch, batch).
  const Dataset d = testing::random_dataset(100, 10, 47);
  LoaderOptions options;
  options.batch_size = 16;
  options.augment = true;
  options.seed = 5;
  BatchLoader whole(d, options), resumed(d, options);
  whole.start_epoch(3);
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int32_t>> labels;
  for (BatchView b; whole.next(b);) {
    images.emplace_back(b.images, b.images + int64_t(b.size) * kImageBytes);
    labels.emplace_back(b.labels, b.labels + b.size);
  }
  REQUIRE(images.size() == 7);  // 6 full batches and one of 4
  for (int64_t k : {int64_t(0), int64_t(3), int64_t(6), int64_t(7)}) {
    resumed.start_epoch(3, k);
    int64_t expect = k;
    for (BatchView b; resumed.next(b); ++expect) {
      REQUIRE(expect < 7);
      CHECK(b.index == expect);
      CHECK(std::vector<float>(b.images, b.images + int64_t(b.size) * kImageBytes) ==
            images[size_t(expect)]);
      CHECK(std::vector<int32_t>(b.labels, b.labels + b.size) == labels[size_t(expect)]);
    }
    CHECK(expect == 7);
  }
  CHECK_THROWS_AS(resumed.start_epoch(3, 8), std::invalid_argument);
  CHECK_THROWS_AS(resumed.start_epoch(3, -1), std::invalid_argument);
}

TEST_CASE("loader: conversion runs at >= 50,000 images/s on one thread") {
  const Dataset d = testing::random_dataset(8192, 10, 47);
  for (bool augment : {false, true}) {
    LoaderOptions options;
    options.augment = augment;
    const NormalizeTable table = make_normalize_table(options);
    const auto order = epoch_order(d.n, 1, 0, true);
    std::vector<float> images(128 * kImageBytes);
    std::vector<int32_t> labels(128);
    double best = 0;
    for (int repeat = 0; repeat < 3; ++repeat) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t begin = 0; begin < d.n; begin += 128) {
        make_batch(d, std::span(order.data() + begin, 128), table, augment, begin, images.data(),
                   labels.data());
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, d.n / s);
    }
    MESSAGE("make_batch " << std::string(augment ? "with" : "without") << " augmentation: " << best
                          << " images/s");
#if defined(NDEBUG) && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
    CHECK(best >= 50000);  // optimised builds only
#endif
  }
}

}  // namespace
}  // namespace dsc::data

namespace dsc::data {

// Data-parallel training (train/data_parallel.h): the shards of every global batch, put side by
// side, are the whole batch — the same images, labels and augmentation draws — for equal and
// unequal slices (the last batch of 103 images in 16s: 7 images over 3 shards: 2, 2, 3).
TEST_CASE("loader: shards of each global batch put together are the whole batch") {
  const Dataset d = testing::random_dataset(103, 10, 43);
  for (bool augment : {false, true}) {
    LoaderOptions options;
    options.batch_size = 16;
    options.augment = augment;
    BatchLoader whole(d, options);
    std::vector<std::unique_ptr<BatchLoader>> shards;
    for (int s = 0; s < 3; ++s) {
      LoaderOptions o = options;
      o.shard = s;
      o.shards = 3;
      shards.push_back(std::make_unique<BatchLoader>(d, o));
      CHECK(shards.back()->batches_per_epoch() == whole.batches_per_epoch());
      shards.back()->start_epoch(2);
    }
    whole.start_epoch(2);
    for (BatchView w; whole.next(w);) {
      std::vector<float> images;
      std::vector<int32_t> labels;
      for (auto& loader : shards) {
        BatchView b;
        REQUIRE(loader->next(b));
        CHECK(b.global_size == w.size);
        CHECK(b.size == (w.size == 16 ? (loader == shards[0]   ? 5
                                         : loader == shards[1] ? 5
                                                               : 6)
                                      : (loader == shards[2] ? 3 : 2)));
        images.insert(images.end(), b.images, b.images + int64_t(b.size) * kImageBytes);
        labels.insert(labels.end(), b.labels, b.labels + b.size);
      }
      CHECK(labels == std::vector<int32_t>(w.labels, w.labels + w.size));
      CHECK(images == std::vector<float>(w.images, w.images + int64_t(w.size) * kImageBytes));
    }
  }
}

}  // namespace dsc::data
