// The training loop behind `train`: the seed's recipe by default (BRIEF.md: Adam, 5 epochs, no
// augmentation, inputs scaled to [-1, 1], batch 128), on the CPU or a GPU, in fp32 or mixed
// precision, with per-epoch evaluation, a seed-style summary table and JSON-lines logs.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "core/kernel_options.h"
#include "core/tensor.h"
#include "layers/models.h"

namespace dsc {

struct TrainConfig {
  std::string model = "depsep";
  int batch = 128;
  int epochs = 5;
  float lr = 1e-3f;
  std::string optimizer = "adam";  // adam | sgd
  float momentum = 0.9f;           // sgd
  bool nesterov = false;           // sgd
  float weight_decay = 0.0f;
  std::string schedule = "constant";  // constant | cosine | linear
  int warmup_epochs = 0;
  bool augment = false;
  std::string normalize = "scale";  // scale (x/127.5 - 1) | standardize
  std::string device = "auto";      // cpu | cuda | auto
  std::string precision = "auto";   // fp32 | amp | auto (amp on a GPU, fp32 on the CPU)
  std::string graph = "auto";       // step graphs: auto (where possible) | on (or fail) | off
  int threads = 0;                  // 0: all cores
  uint64_t seed = 0;
  std::string data;  // empty: $CIFAR10_DIR, data/cifar10, ../shared/cifar10
  std::string log;   // JSON lines
  std::string csv;   // epoch rows as CSV
  std::string save;  // checkpoint written after every epoch (layers/checkpoint.h), atomically
  std::string load;  // checkpoint the model starts from; with epochs = 0, evaluated only
  int64_t limit_train = 0;  // 0: all
  int64_t limit_test = 0;
  int warmup_steps = 5;     // steps of epoch 1 excluded from images/sec
  int eval_batch = 500;
  bool progress = true;     // progress bar when stdout is a terminal
  KernelOptions kernels;    // kernel choices on a GPU (core/kernel_options.h)
  std::string command;      // the command line, for the logs
};

struct EpochResult {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double images_per_sec = 0, data_wait_s = 0, wall_s = 0, lr = 0, loss_scale = 1;
  int64_t skipped_steps = 0;
  double sm_util = -1, mem_util = -1;  // NVML means over the epoch, percent; -1: n/a
};

struct TrainResult {
  int64_t params = 0, trainable_params = 0;
  std::vector<EpochResult> epochs;
  double peak_images_per_sec = 0, median_images_per_sec = 0;
  double train_acc = 0, test_acc = 0, test_loss = 0;  // after training, on the full splits
  double sm_util = -1, mem_util = -1;  // means over the timed epochs; -1: n/a (no GPU or NVML)
  double wall_s = 0;
};

// Runs the whole job. Prints the header, epoch lines and the final table to `out`.
// Throws dsc::Error / dsc::data::DataError on bad input, before writing anything when possible.
TrainResult run_training(const TrainConfig& config, std::ostream& out);

// The `train` program: parses args (without argv[0]), runs, returns the exit code; errors are
// printed to `err` as one line starting with "error: ".
int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace dsc
