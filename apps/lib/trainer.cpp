// The training loop (see trainer.h). One step: batch -> device tensor (f16 under mixed
// precision), forward, softmax cross-entropy in f32, backward of the scaled loss, inf/NaN check,
// optimizer step on the flat f32 master buffer (skipped on overflow), loss-scale update.
// Tested end to end on real CIFAR-10 images in tests/apps/test_train.cpp.
#include "apps/lib/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>

#include "apps/lib/run_log.h"
#include "apps/lib/version.h"
#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/format.h"
#include "core/gpu_info.h"
#include "core/gpu_monitor.h"
#include "core/graph.h"
#include "core/kernel_options.h"
#include "core/ops.h"
#include "core/ops/gemm.h"
#include "data/cifar10.h"
#include "data/loader.h"
#include "layers/checkpoint.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace dsc {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    DSC_CHECK(device_available(Device::CUDA), "--device cuda: ",
              device_unavailable_reason(Device::CUDA));
    return Device::CUDA;
  }
  DSC_CHECK(name == "auto", "--device: unknown device '", name, "' (expected cpu, cuda or auto)");
  return device_available(Device::CUDA) ? Device::CUDA : Device::CPU;
}

// One batch as the tensors the model consumes, on the training device; images in the compute
// dtype. On a GPU the loader's buffers are copied straight to the device (copy_bytes returns
// without waiting for the GPU, so the copy overlaps the previous step's kernels).
struct BatchTensors {
  Tensor images, labels;
};

// Copies a batch into images [n, 3, 32, 32] f32 and labels [n] i32 on their device.
void copy_batch(const data::BatchView& b, Tensor& images, Tensor& labels) {
  const KernelTable& k = kernels(images.device());
  k.copy_bytes(images.raw(), images.device(), b.images, Device::CPU, images.nbytes());
  k.copy_bytes(labels.raw(), labels.device(), b.labels, Device::CPU, labels.nbytes());
}

BatchTensors to_tensors(const data::BatchView& b, Device device, DType compute) {
  BatchTensors t;
  t.images = Tensor::empty({b.size, 3, 32, 32}, DType::F32, device);
  t.labels = Tensor::empty({b.size}, DType::I32, device);
  copy_batch(b, t.images, t.labels);
  if (compute != DType::F32) t.images = t.images.to(compute);
  return t;
}

// Running sums of loss x batch size and of correct predictions, kept on the device: adding a
// batch launches two small kernels and never waits for the GPU; reading them synchronises, so
// that happens only when something is reported (the progress bar, the end of an epoch).
class DeviceTally {
 public:
  explicit DeviceTally(Device device)
      : device_(device), correct_(Tensor::zeros({1}, DType::I32, device)) {}
  void add(const Tensor& loss, const Tensor& logits, const Tensor& labels, int64_t batch) {
    add_on_device(loss, logits, labels, batch);
    count(batch);
  }
  // The two halves of add(): the device work (what a step graph records) and the host count
  // (what runs on every step, replayed or not).
  void add_on_device(const Tensor& loss, const Tensor& logits, const Tensor& labels,
                     int64_t batch) {
    if (!loss_sum_.defined()) loss_sum_ = Tensor::zeros({1}, loss.dtype(), device_);
    const KernelTable& k = kernels(device_);
    k.axpy(loss, double(batch), loss_sum_);
    k.count_correct(logits, labels, correct_);  // adds to correct_
  }
  void count(int64_t batch) { seen_ += batch; }
  // Zero again, in the same storage (a step graph keeps writing to it).
  void reset() {
    if (loss_sum_.defined()) loss_sum_.fill_(0.0);
    correct_.fill_(0.0);
    seen_ = 0;
  }
  double mean_loss() const { return seen_ ? loss_sum_.item() / double(seen_) : 0.0; }
  double accuracy() const { return seen_ ? correct_.item() / double(seen_) : 0.0; }

 private:
  Device device_;
  Tensor loss_sum_, correct_;
  int64_t seen_ = 0;
};

struct EvalResult {
  double loss = 0, acc = 0;
};

// params: the model's parameters in one flat buffer (the optimizer's), cast once for the whole
// evaluation under mixed precision.
EvalResult evaluate(Module& model, const data::Dataset& ds, const TrainConfig& cfg, Device device,
                    DType compute, const Tensor& params) {
  NoGradGuard no_grad;
  model.eval();
  std::optional<CastCache> cast_once;
  if (compute != params.dtype()) cast_once.emplace(model, params, compute);
  data::LoaderOptions lo;
  lo.batch_size = std::min<int64_t>(cfg.eval_batch, ds.n);
  lo.shuffle = false;
  lo.normalization = cfg.normalize == "standardize" ? data::Normalization::kStandardize
                                                    : data::Normalization::kScale;
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

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool enabled, int epoch, int epochs, int64_t total)
      : out_(out), enabled_(enabled), epoch_(epoch), epochs_(epochs), total_(total) {}
  // Whether update(done, ...) would draw now (at most 5 times a second, and at the end); the
  // caller reads the running loss, which waits for the device, only then.
  bool due(int64_t done) const {
    return enabled_ && (done == total_ || seconds_since(last_) >= 0.2);
  }
  void update(int64_t done, double loss, double ips) {
    if (!due(done)) return;
    last_ = Clock::now();
    const int width = 30;
    const int filled = int(width * done / std::max<int64_t>(1, total_));
    std::ostringstream os;
    os << "\repoch " << epoch_ << "/" << epochs_ << " [" << std::string(filled, '=')
       << (filled < width ? ">" : "") << std::string(std::max(0, width - filled - 1), ' ') << "] "
       << done << "/" << total_ << "  loss " << std::fixed << std::setprecision(4) << loss
       << "  " << std::setprecision(0) << ips << " img/s   ";
    out_ << os.str() << std::flush;
  }
  void finish() {
    if (enabled_) out_ << "\r" << std::string(100, ' ') << "\r" << std::flush;
  }

 private:
  std::ostream& out_;
  bool enabled_;
  int epoch_, epochs_;
  int64_t total_;
  Clock::time_point last_ = Clock::now() - std::chrono::seconds(1);
};

// The model name a checkpoint's meta records ("" when it records none).
std::string checkpoint_model(const nlohmann::json& meta) {
  if (!meta.is_object() || !meta.contains("model") || !meta["model"].is_string()) return "";
  return meta["model"].get<std::string>();
}

// --load: the checkpoint is readable and holds --model (its tensors are checked on loading);
// --save: a checkpoint can be written there. Both before any data is read.
void check_checkpoint_flags(const TrainConfig& c) {
  if (!c.load.empty()) {
    const std::string saved = checkpoint_model(read_checkpoint_meta(c.load));
    DSC_CHECK(saved.empty() || saved == c.model, "--load: checkpoint '", c.load, "' holds a '",
              saved, "' model, but --model is '", c.model, "' (run with --model ", saved, ")");
  }
  if (!c.save.empty()) {
    try {
      check_checkpoint_writable(c.save);
    } catch (const Error& e) {
      throw Error(std::string("--save: ") + e.what());
    }
  }
}

// What a checkpoint written by --save records besides the tensors. "epoch" counts every epoch
// the weights were trained, those of a --load checkpoint included.
nlohmann::json checkpoint_meta(const TrainConfig& c, const EpochResult& e, int epoch,
                               const char* precision) {
  return {{"model", c.model},
          {"epoch", epoch},
          {"train_loss", e.train_loss},
          {"train_acc", e.train_acc},
          {"test_loss", e.test_loss},
          {"test_acc", e.test_acc},
          {"seed", c.seed},
          {"batch", c.batch},
          {"precision", precision},
          {"loaded_from", c.load.empty() ? nlohmann::json() : nlohmann::json(c.load)},
          {"command", c.command},
          {"git_commit", git_commit()},
          {"version", DSC_VERSION},
          {"date", now_iso8601()}};
}

void validate(const TrainConfig& c) {
  DSC_CHECK(c.batch >= 1, "--batch must be at least 1, got ", c.batch);
  DSC_CHECK(c.epochs >= 1 || (c.epochs == 0 && !c.load.empty()),
            "--epochs must be at least 1, got ", c.epochs,
            c.epochs == 0 ? " (--epochs 0 evaluates a checkpoint: add --load PATH)" : "");
  DSC_CHECK(c.lr > 0 && std::isfinite(c.lr), "--lr must be a positive number, got ", c.lr);
  DSC_CHECK(c.optimizer == "adam" || c.optimizer == "sgd", "--optimizer: unknown optimizer '",
            c.optimizer, "' (expected adam or sgd)");
  DSC_CHECK(c.normalize == "scale" || c.normalize == "standardize", "--normalize: unknown mode '",
            c.normalize, "' (expected scale or standardize)");
  DSC_CHECK(c.precision == "fp32" || c.precision == "amp" || c.precision == "auto",
            "--precision: unknown precision '", c.precision, "' (expected fp32, amp or auto)");
  DSC_CHECK(c.graph == "auto" || c.graph == "on" || c.graph == "off", "--graph: unknown mode '",
            c.graph, "' (expected auto, on or off)");
  DSC_CHECK(c.graph != "on" || c.device != "cpu",
            "--graph on: step graphs need --device cuda (the CPU runs steps directly)");
  DSC_CHECK(c.graph != "on" || (c.schedule == "constant" && c.warmup_epochs == 0),
            "--graph on: a step graph freezes the learning rate, but --schedule ", c.schedule,
            (c.warmup_epochs > 0 ? " with --warmup-epochs" : ""),
            " changes it every step; use --graph off or --schedule constant");
  DSC_CHECK(c.threads >= 0, "--threads must be >= 0 (0 = all cores), got ", c.threads);
  DSC_CHECK(c.limit_train >= 0 && c.limit_test >= 0, "--limit-train/--limit-test must be >= 0");
  DSC_CHECK(c.warmup_epochs == 0 || (c.warmup_epochs > 0 && c.warmup_epochs < c.epochs),
            "--warmup-epochs must be below --epochs, got ", c.warmup_epochs);
  parse_model_kind(c.model);
  parse_schedule_kind(c.schedule);
  check_checkpoint_flags(c);
}

// The library algorithms the backend chose (cuDNN's, per convolution shape and direction), printed
// and logged once the first epoch has run every shape of a step and of evaluation.
std::vector<std::string> algorithm_lines(Device device) {
  const auto report = kernels(device).algorithm_report;
  return report ? report() : std::vector<std::string>{};
}

void report_algorithms(Device device, std::ostream& out, RunLog& log) {
  const std::vector<std::string> lines = algorithm_lines(device);
  if (lines.empty()) return;
  for (const std::string& l : lines) out << "algorithm  " << l << "\n";
  out << std::flush;
  log.write({{"type", "algorithms"}, {"lines", lines}});
}

}  // namespace

TrainResult run_training(const TrainConfig& cfg, std::ostream& out) {
  validate(cfg);
  const auto t_start = Clock::now();
  cpu::set_num_threads(cfg.threads);
  set_kernel_options(cfg.kernels);
  const Device device = resolve_device(cfg.device);
  DSC_CHECK(cfg.graph != "on" || device == Device::CUDA,
            "--graph on: step graphs need a GPU, and --device ", cfg.device, " chose the CPU");
  const bool amp = cfg.precision == "amp" || (cfg.precision == "auto" && device == Device::CUDA);
  const DType compute = amp ? DType::F16 : DType::F32;

  // ---- data ----
  const std::string data_path = data::resolve_data_path(cfg.data);
  data::Dataset train = data::load_cifar10(data_path, data::Split::kTrain);
  data::Dataset test = data::load_cifar10(data_path, data::Split::kTest);
  if (cfg.limit_train > 0) train = data::subset(train, cfg.limit_train);
  if (cfg.limit_test > 0) test = data::subset(test, cfg.limit_test);
  DSC_CHECK(cfg.batch <= train.n, "--batch ", cfg.batch, " is larger than the training set (",
            train.n, " images in ", data_path, ")");

  RunLog log(cfg.log, cfg.csv);  // fails here, before any training, if a path is unwritable

  // ---- model and optimizer ----
  const ModelKind kind = parse_model_kind(cfg.model);
  auto model = make_seed_cnn(kind, cfg.seed);
  nlohmann::json loaded;  // --load's meta; the parameters move to the device with the model below
  if (!cfg.load.empty()) loaded = load_checkpoint(*model, cfg.load);
  const int loaded_epochs =
      loaded.is_object() && loaded.value("epoch", nlohmann::json()).is_number_integer()
          ? loaded["epoch"].get<int>()
          : 0;
  const ParamCount count = count_parameters(*model);
  model->to(device);
  std::unique_ptr<Optimizer> opt;
  if (cfg.optimizer == "adam") {
    opt = std::make_unique<Adam>(*model, AdamOptions{cfg.lr, 0.9f, 0.999f, 1e-7f, cfg.weight_decay});
  } else {
    opt = std::make_unique<Sgd>(*model, SgdOptions{cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov});
  }
  const Tensor params = opt->parameters().values();  // every parameter, one flat f32 buffer
  data::LoaderOptions lo;
  lo.batch_size = cfg.batch;
  lo.seed = cfg.seed;
  lo.augment = cfg.augment;
  lo.normalization = cfg.normalize == "standardize" ? data::Normalization::kStandardize
                                                    : data::Normalization::kScale;
  data::BatchLoader loader(train, lo);
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  LrSchedule schedule{parse_schedule_kind(cfg.schedule), cfg.lr, cfg.warmup_epochs * steps_per_epoch,
                      cfg.epochs * steps_per_epoch, 0.0f};
  LossScaler scaler(LossScalerOptions{.enabled = amp}, device);
  // The schedule advances with applied updates only; when the rate varies, knowing whether an AMP
  // step was skipped costs one synchronisation per step, otherwise no step waits for the GPU.
  const bool lr_varies = schedule.kind != ScheduleKind::Constant || schedule.warmup_steps > 0;
  // Whether full-batch steps are captured once and replayed (see the step graph below).
  const bool graph_wanted = device == Device::CUDA && cfg.graph != "off" && !lr_varies;
  std::string graph_status = device != Device::CUDA ? "off (cpu)"
                             : cfg.graph == "off"   ? "off (--graph off)"
                             : lr_varies            ? "off (the learning rate varies)"
                                                    : "on";

  // ---- header ----
  nlohmann::json header = {
      {"type", "header"},
      {"framework", "ours"},
      {"model", cfg.model},
      {"params", count.total},
      {"trainable_params", count.trainable},
      {"device", device_name(device)},
      {"threads", cpu::num_threads()},
      {"batch", cfg.batch},
      {"precision", amp ? "amp" : "fp32"},
      {"epochs", cfg.epochs},
      {"optimizer", opt->describe()},
      {"schedule", schedule.describe()},
      {"augment", cfg.augment},
      {"normalize", cfg.normalize},
      {"seed", cfg.seed},
      {"data", data_path},
      {"train_images", train.n},
      {"test_images", test.n},
      {"versions", library_versions()},
      {"gpu", device == Device::CUDA ? gpu_description() : ""},
      {"git_commit", git_commit()},
      {"date", now_iso8601()},
      {"command", cfg.command},
      {"load", cfg.load.empty() ? nlohmann::json() : nlohmann::json(cfg.load)},
      {"load_meta", loaded},
      {"save", cfg.save.empty() ? nlohmann::json() : nlohmann::json(cfg.save)},
      {"graph", graph_status},
      {"kernels",
       device == Device::CUDA ? nlohmann::json(describe(kernel_options())) : nlohmann::json()},
  };
  log.write(header);
  out << "model      " << cfg.model << ": " << with_commas(double(count.total)) << " parameters ("
      << with_commas(double(count.trainable)) << " trainable)\n"
      << "device     " << device_name(device) << ", " << cpu::num_threads() << " CPU threads, "
      << (amp ? "mixed precision (f16 compute, f32 master weights, dynamic loss scale)" : "fp32")
      << "\n"
      << "recipe     batch " << cfg.batch << ", " << cfg.epochs << " epochs, " << opt->describe()
      << ", lr schedule " << schedule.describe() << ", augment " << (cfg.augment ? "on" : "off")
      << ", inputs " << (cfg.normalize == "scale" ? "x/127.5 - 1" : "standardized") << "\n"
      << "data       " << data_path << ": " << with_commas(double(train.n)) << " train, "
      << with_commas(double(test.n)) << " test images\n"
      << "build      " << library_versions() << ", commit " << git_commit() << "\n"
      << (device == Device::CUDA ? "gpu        " + gpu_description() + "\n" : "")
      << (device == Device::CUDA ? "kernels    " + describe(kernel_options()) + "\n" : "")
      << (device == Device::CUDA
              ? "graph      " + graph_status +
                    (graph_wanted ? " (full batches replay one captured step)" : "") + "\n"
              : "")
      << std::flush;
  if (!cfg.load.empty()) {
    out << "loaded     " << cfg.load << " (" << checkpoint_model(loaded) << ", trained "
        << loaded_epochs << " epochs)" << (cfg.epochs == 0 ? ": evaluation only" : "") << "\n";
  }

  // ---- epochs ----
  TrainResult result;
  result.params = count.total;
  result.trainable_params = count.trainable;
  const bool bar = cfg.progress && &out == &std::cout && isatty(fileno(stdout));
  int64_t update = 0;  // optimizer updates applied (drives the schedule)
  // SM / memory utilisation while training, as the seed reports it (NVML; "n/a" without a GPU).
  std::unique_ptr<GpuMonitor> monitor;
  if (device == Device::CUDA) monitor = std::make_unique<GpuMonitor>();
  DeviceTally tally(device);  // one for the whole run: a step graph keeps writing to it

  // One training step on a batch already on the device: forward, loss, backward, optimizer
  // update and the running sums, all device work (no step waits for the GPU unless the learning
  // rate varies under AMP, see lr_varies). It is also what a step graph records.
  const auto step_on_device = [&](const Tensor& images, const Tensor& labels, int64_t n) {
    const Tensor x = compute == DType::F32 ? images : images.to(compute);
    opt->zero_grad();
    std::optional<CastCache> cast_once;  // mixed precision: one cast kernel for all parameters
    if (amp) cast_once.emplace(*model, opt->parameters().values(), compute);
    Tensor logits = model->forward(x);
    Tensor loss = ops::cross_entropy(logits, labels);
    if (amp) {
      ops::mul(loss, scaler.scale_tensor()).backward();
      const Tensor& inf = scaler.check(opt->parameters().grads());
      opt->step(inf, scaler.scale_tensor());  // skipped on the device after an overflow
      scaler.update();
    } else {
      loss.backward();
      opt->step();
    }
    tally.add_on_device(loss, logits, labels, n);
  };

  // Step graph (core/graph.h): on a GPU, after one eager step (cuDNN's algorithm search, the
  // allocator's cache), the step on full batches is captured once and replayed, one launch per
  // step. Full batches go into these tensors, which the graph reads; the last, partial batch of an
  // epoch runs eagerly. A frozen graph needs a constant learning rate.
  StepGraph graph(device);
  bool graph_failed = false;
  int64_t eager_full_steps = 0, graph_replays = 0;
  Tensor fixed_images = Tensor::empty({cfg.batch, 3, 32, 32}, DType::F32, device);
  Tensor fixed_labels = Tensor::empty({cfg.batch}, DType::I32, device);

  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    model->train();
    loader.start_epoch(epoch - 1);
    ProgressBar progress(out, bar, epoch, cfg.epochs, steps_per_epoch);
    tally.reset();
    int64_t step = 0, timed_images = 0;
    const int64_t skipped_before = scaler.skipped();
    Clock::time_point t_timed = Clock::now();
    if (monitor) monitor->start();
    for (data::BatchView b; loader.next(b); ++step) {
      if (step == (epoch == 1 ? std::min<int64_t>(cfg.warmup_steps, steps_per_epoch - 1) : 0)) {
        kernels(device).synchronize();
        t_timed = Clock::now();
        timed_images = 0;
      }
      opt->set_lr(schedule.lr_at(update));
      if (b.size == cfg.batch) {
        copy_batch(b, fixed_images, fixed_labels);
        if (graph_wanted && !graph_failed && !graph.captured() && eager_full_steps >= 1) {
          if (!graph.capture([&] { step_on_device(fixed_images, fixed_labels, b.size); })) {
            DSC_CHECK(cfg.graph != "on", "--graph on: capturing the training step failed: ",
                      graph.failure());
            graph_failed = true;
            graph_status = "off (capture failed: " + graph.failure() + ")";
            progress.finish();
            out << "warning    step graph capture failed (" << graph.failure()
                << "); training goes on without it\n" << std::flush;
          }
        }
        if (graph.captured()) {
          graph.replay();
          ++graph_replays;
        } else {
          step_on_device(fixed_images, fixed_labels, b.size);
          ++eager_full_steps;
        }
      } else {
        BatchTensors t = to_tensors(b, device, DType::F32);
        step_on_device(t.images, t.labels, b.size);
      }
      if (!amp || !lr_varies || scaler.flag().item() == 0.0) ++update;
      tally.count(b.size);
      timed_images += b.size;
      if (progress.due(step + 1))
        progress.update(step + 1, tally.mean_loss(), timed_images / seconds_since(t_timed));
    }
    kernels(device).synchronize();
    const double timed_s = seconds_since(t_timed);
    const GpuUtilization util = monitor ? monitor->stop() : GpuUtilization{};
    progress.finish();
    EpochResult e;
    e.epoch = epoch;
    e.train_loss = tally.mean_loss();
    e.train_acc = tally.accuracy();
    e.images_per_sec = timed_images / timed_s;
    e.data_wait_s = loader.wait_seconds();
    e.lr = opt->lr();
    e.loss_scale = scaler.scale();
    e.skipped_steps = scaler.skipped() - skipped_before;
    const EvalResult ev = evaluate(*model, test, cfg, device, compute, params);
    e.test_loss = ev.loss;
    e.test_acc = ev.acc;
    e.wall_s = seconds_since(t_epoch);
    if (util.valid) {
      e.sm_util = util.sm_percent;
      e.mem_util = util.memory_percent;
    }
    result.epochs.push_back(e);
    std::ostringstream line;
    line << std::fixed << "epoch " << epoch << "/" << cfg.epochs << "  train loss "
         << std::setprecision(4) << e.train_loss << " acc " << std::setprecision(2)
         << 100 * e.train_acc << "%  test loss " << std::setprecision(4) << e.test_loss << " acc "
         << std::setprecision(2) << 100 * e.test_acc << "%  " << std::setprecision(1)
         << e.images_per_sec << " img/s  data wait " << std::setprecision(2) << e.data_wait_s
         << " s  wall " << std::setprecision(1) << e.wall_s << " s";
    if (amp) line << "  loss scale " << e.loss_scale << ", skipped " << e.skipped_steps;
    if (monitor) line << "  GPU " << util.str();
    out << line.str() << "\n" << std::flush;
    log.write({{"type", "epoch"},       {"epoch", epoch},
               {"train_loss", e.train_loss}, {"train_acc", e.train_acc},
               {"test_loss", e.test_loss},   {"test_acc", e.test_acc},
               {"images_per_sec", e.images_per_sec}, {"data_wait_s", e.data_wait_s},
               {"wall_s", e.wall_s},         {"lr", e.lr},
               {"loss_scale", e.loss_scale}, {"skipped_steps", e.skipped_steps},
               {"sm_util", util.valid ? nlohmann::json(util.sm_percent) : nlohmann::json()},
               {"mem_util", util.valid ? nlohmann::json(util.memory_percent) : nlohmann::json()}});
    if (epoch == 1) report_algorithms(device, out, log);
    if (!cfg.save.empty()) {
      save_checkpoint(*model, cfg.save,
                      checkpoint_meta(cfg, e, loaded_epochs + epoch, amp ? "amp" : "fp32"));
      out << "saved      " << cfg.save << " (epoch " << loaded_epochs + epoch << ")\n"
          << std::flush;
    }
  }

  // ---- summary: the seed's table ----
  // As the seed: the first two epochs are warm-up (fewer when the run is shorter; at least the
  // last epoch is timed), and images/sec is the best (peak) and median of the timed epochs.
  const int first_timed = std::min(2, cfg.epochs - 1) + 1;
  std::vector<double> ips, sm, mem;
  std::vector<int> timed_epochs;
  for (const EpochResult& e : result.epochs) {
    if (e.epoch < first_timed) continue;
    ips.push_back(e.images_per_sec);
    timed_epochs.push_back(e.epoch);
    if (e.sm_util >= 0) {
      sm.push_back(e.sm_util);
      mem.push_back(e.mem_util);
    }
  }
  const auto mean = [](const std::vector<double>& v) {
    return v.empty() ? -1.0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  };
  result.sm_util = mean(sm);
  result.mem_util = mean(mem);
  const auto percent_or_na = [](double v) {
    std::ostringstream o;
    if (v < 0) return std::string("n/a");
    o << std::fixed << std::setprecision(1) << v << "%";
    return o.str();
  };
  const auto json_or_null = [](double v) { return v < 0 ? nlohmann::json() : nlohmann::json(v); };
  result.peak_images_per_sec = ips.empty() ? 0.0 : *std::max_element(ips.begin(), ips.end());
  result.median_images_per_sec = median(ips);
  const EvalResult train_eval = evaluate(*model, train, cfg, device, compute, params);
  result.train_acc = train_eval.acc;
  // With --epochs 0 (evaluating a --load checkpoint) no epoch has measured the test set yet.
  const EvalResult test_eval = result.epochs.empty()
                                   ? evaluate(*model, test, cfg, device, compute, params)
                                   : EvalResult{result.epochs.back().test_loss,
                                                result.epochs.back().test_acc};
  result.test_acc = test_eval.acc;
  result.test_loss = test_eval.loss;
  result.wall_s = seconds_since(t_start);
  out << "\n| model | device | precision | batch | params | peak img/s | median img/s | train acc "
         "| test acc | SM util | memory util |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
      << "| " << cfg.model << " | " << device_name(device) << " | " << (amp ? "amp" : "fp32")
      << " | " << cfg.batch << " | " << with_commas(double(count.total)) << " | "
      << with_commas(result.peak_images_per_sec) << " | "
      << with_commas(result.median_images_per_sec) << " | " << std::fixed << std::setprecision(1)
      << 100 * result.train_acc << "% | " << 100 * result.test_acc << "% | "
      << percent_or_na(result.sm_util) << " | " << percent_or_na(result.mem_util) << " |\n"
      << std::flush;
  log.write({{"type", "summary"},
             {"framework", "ours"},
             {"model", cfg.model},
             {"device", device_name(device)},
             {"precision", amp ? "amp" : "fp32"},
             {"batch", cfg.batch},
             {"params", count.total},
             {"trainable_params", count.trainable},
             {"gpu", device == Device::CUDA ? nlohmann::json(gpu_description()) : nlohmann::json()},
             {"algorithms", algorithm_lines(device)},
             {"images_per_sec", result.peak_images_per_sec},  // the seed's: the best timed epoch
             {"peak_images_per_sec", result.peak_images_per_sec},
             {"median_images_per_sec", result.median_images_per_sec},
             {"sm_util", json_or_null(result.sm_util)},
             {"mem_util", json_or_null(result.mem_util)},
             {"timed_epochs", timed_epochs},
             {"train_acc", result.train_acc},
             {"test_acc", result.test_acc},
             {"test_loss", result.test_loss},
             {"skipped_steps", scaler.skipped()},
             {"graph", graph_status},
             {"graph_replays", graph_replays},
             {"wall_s", result.wall_s},
             {"date", now_iso8601()},
             {"command", cfg.command}});
  return result;
}

}  // namespace dsc
