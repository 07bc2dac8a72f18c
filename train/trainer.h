// The training library: a Trainer trains any registered model (layers/model_registry.h) on a
// CIFAR-10-style data set with the `train` program's configuration — the seed's recipe by default
// (Adam, 5 epochs, no augmentation, inputs scaled to [-1, 1], batch 128) — on the CPU
// or a GPU, in fp32 or mixed precision, with per-epoch evaluation, a seed-style summary table,
// JSON-lines logs, checkpoints and a progress bar. Every step is a TrainStep (train/step.h); on a
// GPU full batches replay one captured step graph.
//
//   dsc::TrainConfig c;
//   c.model = "depsep";
//   c.epochs = 2;
//   dsc::TrainResult r = dsc::Trainer(c, std::cout).run();
//
// A user program with its own model registers it and hands its command line to train_main, which
// is the `train` program: every flag, log and `compare` work unchanged (model_registry.h).
// Tested end to end on real CIFAR-10 images in tests/train/.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/kernel_options.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "layers/module.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/evaluate.h"
#include "train/profile.h"
#include "train/run_log.h"
#include "train/step.h"

namespace dsc {

class DataParallel;
class GpuMonitor;
class ProgressBar;

struct TrainConfig {
  std::string model = "depsep";  // a registered model (layers/model_registry.h)
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
  // A checkpoint written by --save to continue its run from, exactly where it stopped (mid-epoch
  // included): model, optimizer state, loss scaler, running epoch sums and the data position.
  std::string resume;
  int64_t save_every = 0;  // also save every N steps inside epochs (0: after each epoch only)
  int keep = 1;            // checkpoints kept: the newest at `save`, older ones as save.1, ...
  int64_t limit_train = 0;  // 0: all
  int64_t limit_test = 0;
  int warmup_steps = 5;  // steps of epoch 1 excluded from images/sec
  int eval_batch = 500;
  bool progress = true;   // progress bar when stdout is a terminal
  KernelOptions kernels;  // kernel choices on a GPU (core/kernel_options.h)
  ProfileOptions profile;  // --profile: a pass after training (train/profile.h)
  // Several ranks (mpirun -np N): BatchNorm statistics over the global batch
  // (train/data_parallel.h)
  bool sync_bn = false;
  // Several ranks: gradient buckets of about this many KiB averaged while the backward runs (0:
  // one average after the backward).
  int64_t bucket_kb = 256;
  std::string command;    // the command line, for the logs
};

// Throws dsc::Error naming the flag for the first value out of range (before any data is read).
void validate(const TrainConfig& config);

struct EpochResult {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double images_per_sec = 0, data_wait_s = 0, wall_s = 0, lr = 0, loss_scale = 1;
  // Several ranks on the CPU: seconds the epoch's steps waited after the backward for the
  // gradient average (DataParallel::take_waits): what the backward did not hide, and waiting for
  // slower ranks; -1: n/a (one process, or GPUs).
  double allreduce_exposed_s = -1, rank_skew_s = -1;
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

class Trainer {
 public:
  // Validates the configuration, reads the data, builds the model (from --load's checkpoint when
  // given) and its optimizer, and opens the logs: everything that can fail on bad input fails
  // here, before anything is trained or written. Prints nothing yet.
  Trainer(const TrainConfig& config, std::ostream& out);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // The whole job: the header, every epoch (training, evaluation, log line, checkpoint), the
  // summary table. Prints to `out` and writes the logs.
  TrainResult run();

  Module& model() { return *model_; }
  Device device() const { return device_; }
  bool mixed_precision() const { return amp_; }

 private:
  void write_header();
  EpochResult train_epoch(int epoch, int64_t first_batch);
  void train_batch(const data::BatchView& b, ProgressBar& progress);
  EvalResult evaluate_on(const data::Dataset& ds);
  void write_summary(TrainResult& result);
  void profile();  // --profile, after the summary (trainer_profile.cpp)
  // ---- checkpoints, resume, interruption, numerical health (trainer.cpp) ----
  // Everything besides the model that a resumed run needs to continue bit for bit.
  std::vector<NamedTensor> training_state() const;
  // What must be the same for a checkpoint's run to be continued by this one.
  nlohmann::json run_identity() const;
  void resume_from(const std::string& path);
  // Writes --save: `batches_done` steps of `epoch` are done (all of them, evaluated, when `done`
  // is the finished epoch's result).
  void save(int epoch, int64_t batches_done, const EpochResult* done);
  // Saves (with --save, unless `saved`), logs and throws TrainingInterrupted when a stop was
  // requested.
  void stop_if_requested(int epoch, int64_t batches_done, ProgressBar& progress, bool saved);
  // fp32: stops with the step and the first parameter whose gradient is not finite; mixed
  // precision: stops when the loss scale collapses. Reads the device (every step on the CPU,
  // every kHealthInterval steps and at the end of an epoch on a GPU).
  void check_health(int epoch, int64_t batches_done, ProgressBar& progress, bool force);

  TrainConfig cfg_;
  std::ostream& out_;
  std::chrono::steady_clock::time_point t_start_;
  Device device_ = Device::CPU;
  bool amp_ = false;
  DType compute_ = DType::F32;
  std::string data_path_;
  data::Dataset train_, test_;
  std::unique_ptr<RunLog> log_;
  std::shared_ptr<Module> model_;
  nlohmann::json loaded_;  // --load's checkpoint meta
  int loaded_epochs_ = 0;
  int64_t params_ = 0, trainable_params_ = 0;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<data::BatchLoader> loader_;
  int64_t steps_per_epoch_ = 0;
  LrSchedule schedule_;
  std::unique_ptr<LossScaler> scaler_;
  std::unique_ptr<TrainStep> step_;
  bool lr_varies_ = false;
  int64_t update_ = 0;  // optimizer updates applied (drives the schedule)
  // Where this run starts: epoch first_epoch_, after first_batch_ of its steps (a resumed run).
  int first_epoch_ = 1;
  int64_t first_batch_ = 0;
  nlohmann::json resumed_;         // --resume's checkpoint meta
  std::string optimizer_desc_;     // the optimizer as configured (before any schedule)
  std::string data_fingerprint_;   // CRC-32 of the training images and labels (with --save/--resume)
  int64_t epoch_skipped_base_ = 0;  // the scaler's skipped steps when the current epoch began
  Tensor nonfinite_;               // fp32: set on the device by a step with a non-finite gradient
  Tensor last_loss_;               // the last step's loss (for the non-finite report)
  int64_t health_steps_ = 0, health_skipped_ = 0, skip_run_ = 0;  // mixed precision's watch
  // Step graph (core/graph.h): on a GPU, after one eager full-batch step (cuDNN's algorithm
  // search, the allocator's cache), the step on full batches is captured once and replayed, one
  // launch per step. Full batches go into fixed_images / fixed_labels, which the graph reads; the
  // last, partial batch of an epoch runs eagerly. A frozen graph needs a constant learning rate.
  bool graph_wanted_ = false, graph_failed_ = false;
  std::string graph_status_;
  std::unique_ptr<StepGraph> graph_;
  int64_t eager_full_steps_ = 0, graph_replays_ = 0;
  Tensor fixed_images_, fixed_labels_;
  std::unique_ptr<DeviceTally> tally_;  // one for the whole run: a step graph keeps writing to it
  std::unique_ptr<GpuMonitor> monitor_;
  // Several ranks (train/data_parallel.h): this rank's share of each global batch of cfg_.batch.
  std::unique_ptr<DataParallel> dp_;
  int local_batch_ = 0;
  std::vector<std::string> rank_devices_;
};

// What Trainer::run() throws when a SIGINT or SIGTERM (or request_stop) asked it to stop: it
// finished the current step, saved a checkpoint when --save is set, and logged an "interrupted"
// line. train_main exits with 128 + signal.
struct TrainingInterrupted : std::runtime_error {
  TrainingInterrupted(int sig, const std::string& what) : std::runtime_error(what), signal(sig) {}
  int signal;
};

// Asks a running Trainer to stop after its current step, as a first SIGINT/SIGTERM does while
// StopSignals is alive (a second signal then ends the process at once). Thread- and
// signal-safe; cleared when StopSignals is installed and when a Trainer has stopped for it.
void request_stop(int signal);

// While alive, SIGINT and SIGTERM call request_stop (train_main holds one for its run); the
// previous handlers come back when it is destroyed.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The same as Trainer(config, out).run().
TrainResult run_training(const TrainConfig& config, std::ostream& out);

// The `train` program: parses args (without argv[0]), runs, returns the exit code; errors are
// printed to `err` as one line starting with "error: ". The second form is for a user program's
// main: train_main(argc, argv) with the standard streams.
int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int train_main(int argc, char** argv);

}  // namespace dsc
