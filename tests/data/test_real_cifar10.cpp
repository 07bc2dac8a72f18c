// Tests on the real CIFAR-10 image folder (../shared/cifar10 next to the repository; skipped with
// a message when it is absent): image and class counts, the published per-channel means and
// standard deviations to 4 decimals, a class-balanced subset, and a pack -> read round trip that
// must give identical bytes and labels. Each split is decoded once per test process.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "data/cifar10.h"
#include "data_test_util.h"

namespace dsc::data {
namespace {

namespace fs = std::filesystem;

const std::string kRealPath = DSC_SOURCE_DIR "/../shared/cifar10";

bool have_real_data() {
  if (testing::fs::is_directory(kRealPath + "/train")) return true;
  MESSAGE("skipped: no real CIFAR-10 at " << kRealPath);
  return false;
}

const Dataset& real(Split split) {
  static const auto load = [](Split s) {
    const auto t0 = std::chrono::steady_clock::now();
    Dataset d = load_cifar10(kRealPath, s);
    MESSAGE("decoded the "
            << std::string(split_name(s)) << " split (" << d.n << " images) in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s");
    return d;
  };
  if (split == Split::kTrain) {
    static const Dataset train = load(Split::kTrain);
    return train;
  }
  static const Dataset test = load(Split::kTest);
  return test;
}

// |value - want| rounds away at the 4th decimal.
void check_4_decimals(const std::array<double, 3>& got, const std::array<double, 3>& want) {
  for (int c = 0; c < 3; ++c) {
    INFO("channel " << c << ": " << got[c]);
    CHECK(std::round(got[c] * 1e4) == std::round(want[c] * 1e4));
  }
}

// One test case for everything that needs the train split: under ctest every test case is its
// own process and decodes the split again (about 1.5 s of CPU).
TEST_CASE("real CIFAR-10 train split: counts, statistics, subset, pack round trip") {
  if (!have_real_data()) return;
  const Dataset& train = real(Split::kTrain);
  CHECK(train.n == 50000);
  CHECK(train.format == "image-folder");
  CHECK(train.class_names == cifar10_class_names());
  CHECK(class_counts(train) == std::vector<int64_t>(10, 5000));
  const ChannelStats stats = channel_stats(train);
  check_4_decimals(stats.mean, {0.4914, 0.4822, 0.4465});
  check_4_decimals(stats.std, {0.2470, 0.2435, 0.2616});
  CHECK(class_counts(subset(train, 1000)) == std::vector<int64_t>(10, 100));
  CHECK(class_counts(subset(train, 1005)) ==
        std::vector<int64_t>{101, 101, 101, 101, 101, 100, 100, 100, 100, 100});

  // Pack both splits to the binary layout and read them back: identical bytes and labels.
  const Dataset& test = real(Split::kTest);
  testing::TempDir dir;
  pack_cifar10(train, test, dir.path().string());
  for (int k = 1; k <= 5; ++k) {
    CHECK(testing::fs::file_size(dir / ("data_batch_" + std::to_string(k) + ".bin")) == 30730000u);
  }
  for (const Dataset* want : {&train, &test}) {
    const Dataset got = load_cifar10(dir.path().string(), want->split);
    REQUIRE(got.n == want->n);
    CHECK(got.format == "cifar10-binary");
    CHECK(got.class_names == want->class_names);
    CHECK(got.labels == want->labels);
    CHECK(std::memcmp(got.pixels.data(), want->pixels.data(), want->pixels.size()) == 0);
  }
}

TEST_CASE("real CIFAR-10 test split: counts and channel means") {
  if (!have_real_data()) return;
  const Dataset& test = real(Split::kTest);
  CHECK(test.n == 10000);
  CHECK(class_counts(test) == std::vector<int64_t>(10, 1000));
  check_4_decimals(channel_stats(test).mean, {0.4942, 0.4851, 0.4504});
}

}  // namespace
}  // namespace dsc::data
