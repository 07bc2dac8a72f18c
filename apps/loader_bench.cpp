// loader_bench: how fast the data part is. Times (1) decoding the train and test splits from
// disk, (2) the per-batch conversion on the calling thread alone (make_batch: uint8 -> float via
// the lookup table, with and without crop/flip augmentation), (3) full epochs through the
// background BatchLoader (batch 128), with a consumer that does nothing and with one that
// simulates a training step, reporting how long the consumer was blocked. Loader numbers are
// the median over --repeats epochs after one warm-up epoch; decode times are the first run and
// the median of --decode-repeats runs. Data: --data, else $CIFAR10_DIR, data/cifar10,
// ../shared/cifar10 (dsc::data::resolve_data_path).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <span>
#include <thread>
#include <vector>

#include "data/cifar10.h"
#include "data/loader.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace dd = dsc::data;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Busy-waits `us` microseconds: a stand-in for a training step.
void simulate_step(double us) {
  const auto t0 = Clock::now();
  while (seconds_since(t0) * 1e6 < us) {
  }
}

struct EpochResult {
  double images_per_sec;
  double wait_seconds;
  double checksum;
};

// One epoch through the loader; `step_us` > 0 simulates a training step per batch.
EpochResult run_epoch(dd::BatchLoader& loader, int64_t epoch, double step_us) {
  const auto t0 = Clock::now();
  loader.start_epoch(epoch);
  int64_t images = 0;
  double checksum = 0;
  for (dd::BatchView batch; loader.next(batch);) {
    images += batch.size;
    checksum += batch.images[0] + batch.images[static_cast<int64_t>(batch.size) * 3072 - 1];
    if (step_us > 0) simulate_step(step_us);
  }
  return {images / seconds_since(t0), loader.wait_seconds(), checksum};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark CIFAR-10 decoding and the background batch loader."};
  std::string data_flag;
  int batch_size = 128, repeats = 3, decode_repeats = 3;
  double step_us = 1000;
  app.add_option("--data", data_flag,
                 "CIFAR-10 folder (default: $CIFAR10_DIR, data/cifar10, "
                 "../shared/cifar10)");
  app.add_option("--batch", batch_size, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "timed epochs per configuration (median reported)")
      ->check(CLI::PositiveNumber);
  app.add_option("--decode-repeats", decode_repeats, "times the train split is decoded")
      ->check(CLI::PositiveNumber);
  app.add_option("--step-us", step_us, "simulated training step per batch, microseconds");
  CLI11_PARSE(app, argc, argv);

  try {
    const std::string path = dd::resolve_data_path(data_flag);
    // Decoding: the first run may read from disk, later ones from the page cache.
    std::vector<double> decode_s;
    dd::Dataset train;
    for (int r = 0; r < decode_repeats; ++r) {
      const auto start = Clock::now();
      train = dd::load_cifar10(path, dd::Split::kTrain);
      decode_s.push_back(seconds_since(start));
    }
    auto t0 = Clock::now();
    const dd::Dataset test = dd::load_cifar10(path, dd::Split::kTest);
    const double test_s = seconds_since(t0);
    std::printf("data: %s (%s), %u hardware threads\n", path.c_str(), train.format.c_str(),
                std::max(1u, std::thread::hardware_concurrency()));
    std::printf(
        "decode train: %lld images, first run %.2f s, median of %d runs %.2f s "
        "(%.0f images/s)\n",
        static_cast<long long>(train.n), decode_s[0], decode_repeats, median(decode_s),
        train.n / median(decode_s));
    std::printf("decode test:  %lld images in %.2f s (%.0f images/s)\n",
                static_cast<long long>(test.n), test_s, test.n / test_s);

    for (bool augment : {false, true}) {
      dd::LoaderOptions options;
      options.batch_size = batch_size;
      options.augment = augment;
      const char* name = augment ? "augment" : "plain";

      // Conversion alone on this thread: the work the loader's worker does per batch.
      const auto table = dd::make_normalize_table(options);
      const auto order = dd::epoch_order(train.n, 1, 0, true);
      std::vector<float> images(static_cast<size_t>(batch_size) * dd::kImageBytes);
      std::vector<int32_t> labels(batch_size);
      std::vector<double> rates;
      for (int r = 0; r <= repeats; ++r) {
        t0 = Clock::now();
        for (int64_t begin = 0; begin < train.n; begin += batch_size) {
          const int64_t count = std::min<int64_t>(batch_size, train.n - begin);
          dd::make_batch(train, std::span(order.data() + begin, count), table, augment, begin,
                         images.data(), labels.data());
        }
        if (r > 0) rates.push_back(train.n / seconds_since(t0));  // r == 0: warm-up
      }
      std::printf("make_batch %-7s one thread:         %9.0f images/s\n", name, median(rates));

      dd::BatchLoader loader(train, options);
      for (double step : {0.0, step_us}) {
        run_epoch(loader, 0, step);  // warm-up
        std::vector<double> ips, waits;
        for (int r = 1; r <= repeats; ++r) {
          const EpochResult result = run_epoch(loader, r, step);
          ips.push_back(result.images_per_sec);
          waits.push_back(result.wait_seconds);
        }
        if (step == 0) {
          std::printf(
              "loader     %-7s idle consumer:      %9.0f images/s (consumer blocked "
              "%.3f s/epoch)\n",
              name, median(ips), median(waits));
        } else {
          std::printf(
              "loader     %-7s %5.0f us step/batch: %9.0f images/s (consumer blocked "
              "%.4f s/epoch)\n",
              name, step, median(ips), median(waits));
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loader_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
