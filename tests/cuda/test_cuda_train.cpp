// `train --device cuda` end to end on a few real CIFAR-10 images ($CIFAR10_DIR or
// ../shared/cifar10): the run
// header names the GPU, mixed precision is the default, full batches replay one captured step
// graph (every full step after the first), and the losses and accuracies follow the same run with
// --graph off (within the run-to-run spread of cuDNN's algorithm choice). Skipped where no usable
// GPU or no data is present, under the host emulator, and under DSC_CUDA_SYNC=1 (no graphs).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/graph.h"
#include "cuda/cuda_test_util.h"
#include "train/run_log.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace dsc::test;

namespace {

// $CIFAR10_DIR, else ../shared/cifar10 beside the sources: an image folder or the binary batches.
std::string real_data() {
  const char* env = std::getenv("CIFAR10_DIR");
  const std::string p = env && *env ? env : DSC_SOURCE_DIR "/../shared/cifar10";
  return fs::exists(p + "/train") || fs::exists(p + "/data_batch_1.bin") ? p : "";
}

std::vector<nlohmann::json> run(const std::string& data, const std::string& graph,
                                const fs::path& log, std::string* out_text) {
  std::ostringstream out, err;
  const int rc = dsc::train_main(
      {"--device", "cuda", "--model", "depsep", "--data", data, "--limit-train", "1000",
       "--limit-test", "500", "--epochs", "2", "--batch", "128", "--seed", "5", "--graph", graph,
       "--log", log.string(), "--no-progress"},
      out, err);
  REQUIRE_MESSAGE(rc == 0, err.str());
  *out_text = out.str();
  return dsc::read_run_log(log.string());
}

}  // namespace

TEST_CASE("cuda train: step graphs replay every full batch after the first, same learning" *
          doctest::skip(no_real_gpu() || !dsc::StepGraph::supported(dsc::Device::CUDA))) {
  const std::string data = real_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at $CIFAR10_DIR or ../shared/cifar10");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("dsc_test_cuda_train_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text_on, text_off;
  const auto on = run(data, "on", dir / "on.jsonl", &text_on);
  const auto off = run(data, "off", dir / "off.jsonl", &text_off);
  REQUIRE(on.size() == 4);  // header, 2 epochs, summary
  REQUIRE(off.size() == 4);
  CHECK(text_on.find("gpu        ") != std::string::npos);
  CHECK(on[0]["precision"] == "amp");
  CHECK(on[0]["graph"] == "on");
  CHECK(off[0]["graph"] == "off (--graph off)");
  // 1000 images at batch 128: 7 full batches and one of 104 per epoch; the first full one runs
  // eagerly, every later full one is a replay.
  CHECK(on[3]["graph"] == "on");
  CHECK(on[3]["graph_replays"] == 2 * 7 - 1);
  CHECK(off[3]["graph_replays"] == 0);
  for (int e = 1; e <= 2; ++e) {
    const double a = on[e]["train_loss"].get<double>(), b = off[e]["train_loss"].get<double>();
    CHECK_MESSAGE(std::fabs(a - b) <= 0.02 * std::fabs(b), "epoch ", e, ": ", a, " vs ", b);
    CHECK(std::fabs(on[e]["test_acc"].get<double>() - off[e]["test_acc"].get<double>()) <= 0.03);
  }
  CHECK(on[2]["train_loss"].get<double>() < on[1]["train_loss"].get<double>());
}
