// The Trainer (see trainer.h): setup in the constructor, then header, epochs and summary. One
// training step is a TrainStep (step.h) on a batch already on the device; on a GPU full batches
// replay one captured step graph. Tested end to end on real CIFAR-10 images in tests/train/.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "core/format.h"
#include "core/gpu_info.h"
#include "core/gpu_monitor.h"
#include "core/ops/gemm.h"
#include "data/cifar10.h"
#include "layers/checkpoint.h"
#include "layers/model_registry.h"
#include "train/progress.h"
#include "train/version.h"

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
    DSC_CHECK(device_available(Device::CUDA),
              "--device cuda: ", device_unavailable_reason(Device::CUDA));
    return Device::CUDA;
  }
  return device_available(Device::CUDA) ? Device::CUDA : Device::CPU;
}

data::Normalization normalization_of(const TrainConfig& c) {
  return c.normalize == "standardize" ? data::Normalization::kStandardize
                                      : data::Normalization::kScale;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The model name a checkpoint's meta records ("" when it records none).
std::string checkpoint_model(const nlohmann::json& meta) {
  if (!meta.is_object() || !meta.contains("model") || !meta["model"].is_string()) return "";
  return meta["model"].get<std::string>();
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

// The library algorithms the backend chose (cuDNN's, per convolution shape and direction), printed
// and logged once the first epoch has run every shape of a step and of evaluation.
std::vector<std::string> algorithm_lines(Device device) {
  const auto report = kernels(device).algorithm_report;
  return report ? report() : std::vector<std::string>{};
}

std::string percent_or_na(double v) {
  if (v < 0) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << v << "%";
  return o.str();
}

nlohmann::json json_or_null(double v) { return v < 0 ? nlohmann::json() : nlohmann::json(v); }

}  // namespace

// ---- setup ----------------------------------------------------------------------------------

Trainer::Trainer(const TrainConfig& config, std::ostream& out)
    : cfg_(config), out_(out), t_start_(Clock::now()) {
  validate(cfg_);
  cpu::set_num_threads(cfg_.threads);
  set_kernel_options(cfg_.kernels);
  device_ = resolve_device(cfg_.device);
  DSC_CHECK(cfg_.graph != "on" || device_ == Device::CUDA,
            "--graph on: step graphs need a GPU, and --device ", cfg_.device, " chose the CPU");
  amp_ = cfg_.precision == "amp" || (cfg_.precision == "auto" && device_ == Device::CUDA);
  compute_ = amp_ ? DType::F16 : DType::F32;

  // ---- data ----
  data_path_ = data::resolve_data_path(cfg_.data);
  train_ = data::load_cifar10(data_path_, data::Split::kTrain);
  test_ = data::load_cifar10(data_path_, data::Split::kTest);
  if (cfg_.limit_train > 0) train_ = data::subset(train_, cfg_.limit_train);
  if (cfg_.limit_test > 0) test_ = data::subset(test_, cfg_.limit_test);
  DSC_CHECK(cfg_.batch <= train_.n, "--batch ", cfg_.batch, " is larger than the training set (",
            train_.n, " images in ", data_path_, ")");
  // Fails here, before any training, if a path is unwritable.
  log_ = std::make_unique<RunLog>(cfg_.log, cfg_.csv);

  // ---- model and optimizer ----
  ModelSpec spec;
  spec.seed = cfg_.seed;
  spec.in_channels = data::kChannels;
  spec.image = data::kHeight;
  spec.classes = train_.num_classes();
  model_ = make_model(cfg_.model, spec);
  if (!cfg_.load.empty()) loaded_ = load_checkpoint(*model_, cfg_.load);
  loaded_epochs_ =
      loaded_.is_object() && loaded_.value("epoch", nlohmann::json()).is_number_integer()
          ? loaded_["epoch"].get<int>()
          : 0;
  const ParamCount count = count_parameters(*model_);
  params_ = count.total;
  trainable_params_ = count.trainable;
  model_->to(device_);
  if (cfg_.optimizer == "adam") {
    opt_ = std::make_unique<Adam>(*model_,
                                  AdamOptions{cfg_.lr, 0.9f, 0.999f, 1e-7f, cfg_.weight_decay});
  } else {
    opt_ = std::make_unique<Sgd>(
        *model_, SgdOptions{cfg_.lr, cfg_.momentum, cfg_.weight_decay, cfg_.nesterov});
  }
  data::LoaderOptions lo;
  lo.batch_size = cfg_.batch;
  lo.seed = cfg_.seed;
  lo.augment = cfg_.augment;
  lo.normalization = normalization_of(cfg_);
  loader_ = std::make_unique<data::BatchLoader>(train_, lo);
  steps_per_epoch_ = loader_->batches_per_epoch();
  schedule_ =
      LrSchedule{parse_schedule_kind(cfg_.schedule), cfg_.lr, cfg_.warmup_epochs * steps_per_epoch_,
                 cfg_.epochs * steps_per_epoch_, 0.0f};
  scaler_ = std::make_unique<LossScaler>(LossScalerOptions{.enabled = amp_}, device_);
  step_ = std::make_unique<TrainStep>(*model_, *opt_, *scaler_, compute_);
  // The schedule advances with applied updates only; when the rate varies, knowing whether an AMP
  // step was skipped costs one synchronisation per step, otherwise no step waits for the GPU.
  lr_varies_ = schedule_.kind != ScheduleKind::Constant || schedule_.warmup_steps > 0;
  graph_wanted_ = device_ == Device::CUDA && cfg_.graph != "off" && !lr_varies_;
  graph_status_ = device_ != Device::CUDA ? "off (cpu)"
                  : cfg_.graph == "off"   ? "off (--graph off)"
                  : lr_varies_            ? "off (the learning rate varies)"
                                          : "on";
  graph_ = std::make_unique<StepGraph>(device_);
  fixed_images_ = Tensor::empty({cfg_.batch, data::kChannels, data::kHeight, data::kWidth},
                                DType::F32, device_);
  fixed_labels_ = Tensor::empty({cfg_.batch}, DType::I32, device_);
  tally_ = std::make_unique<DeviceTally>(device_);
  // SM / memory utilisation while training, as the seed reports it (NVML; "n/a" without a GPU).
  if (device_ == Device::CUDA) monitor_ = std::make_unique<GpuMonitor>();
}

Trainer::~Trainer() = default;

TrainResult run_training(const TrainConfig& config, std::ostream& out) {
  return Trainer(config, out).run();
}

// ---- the run ------------------------------------------------------------------------------------

TrainResult Trainer::run() {
  write_header();
  TrainResult result;
  result.params = params_;
  result.trainable_params = trainable_params_;
  for (int epoch = 1; epoch <= cfg_.epochs; ++epoch) {
    const EpochResult e = train_epoch(epoch);
    result.epochs.push_back(e);
    if (epoch == 1) {
      const std::vector<std::string> lines = algorithm_lines(device_);
      for (const std::string& l : lines) out_ << "algorithm  " << l << "\n";
      if (!lines.empty()) log_->write({{"type", "algorithms"}, {"lines", lines}});
    }
    if (!cfg_.save.empty()) {
      save_checkpoint(*model_, cfg_.save,
                      checkpoint_meta(cfg_, e, loaded_epochs_ + epoch, amp_ ? "amp" : "fp32"));
      out_ << "saved      " << cfg_.save << " (epoch " << loaded_epochs_ + epoch << ")\n";
    }
    out_ << std::flush;
  }
  write_summary(result);
  return result;
}

void Trainer::write_header() {
  nlohmann::json header = {
      {"type", "header"},
      {"framework", "ours"},
      {"model", cfg_.model},
      {"params", params_},
      {"trainable_params", trainable_params_},
      {"device", device_name(device_)},
      {"threads", cpu::num_threads()},
      {"batch", cfg_.batch},
      {"precision", amp_ ? "amp" : "fp32"},
      {"epochs", cfg_.epochs},
      {"optimizer", opt_->describe()},
      {"schedule", schedule_.describe()},
      {"augment", cfg_.augment},
      {"normalize", cfg_.normalize},
      {"seed", cfg_.seed},
      {"data", data_path_},
      {"train_images", train_.n},
      {"test_images", test_.n},
      {"versions", library_versions()},
      {"gpu", device_ == Device::CUDA ? gpu_description() : ""},
      {"git_commit", git_commit()},
      {"date", now_iso8601()},
      {"command", cfg_.command},
      {"load", cfg_.load.empty() ? nlohmann::json() : nlohmann::json(cfg_.load)},
      {"load_meta", loaded_},
      {"save", cfg_.save.empty() ? nlohmann::json() : nlohmann::json(cfg_.save)},
      {"graph", graph_status_},
      {"kernels",
       device_ == Device::CUDA ? nlohmann::json(describe(kernel_options())) : nlohmann::json()},
  };
  log_->write(header);
  out_ << "model      " << cfg_.model << ": " << with_commas(double(params_)) << " parameters ("
       << with_commas(double(trainable_params_)) << " trainable)\n"
       << "device     " << device_name(device_) << ", " << cpu::num_threads() << " CPU threads, "
       << (amp_ ? "mixed precision (f16 compute, f32 master weights, dynamic loss scale)" : "fp32")
       << "\n"
       << "recipe     batch " << cfg_.batch << ", " << cfg_.epochs << " epochs, "
       << opt_->describe() << ", lr schedule " << schedule_.describe() << ", augment "
       << (cfg_.augment ? "on" : "off") << ", inputs "
       << (cfg_.normalize == "scale" ? "x/127.5 - 1" : "standardized") << "\n"
       << "data       " << data_path_ << ": " << with_commas(double(train_.n)) << " train, "
       << with_commas(double(test_.n)) << " test images\n"
       << "build      " << library_versions() << ", commit " << git_commit() << "\n";
  if (device_ == Device::CUDA) {
    out_ << "gpu        " << gpu_description() << "\n"
         << "kernels    " << describe(kernel_options()) << "\n"
         << "graph      " << graph_status_
         << (graph_wanted_ ? " (full batches replay one captured step)" : "") << "\n";
  }
  if (!cfg_.load.empty()) {
    out_ << "loaded     " << cfg_.load << " (" << checkpoint_model(loaded_) << ", trained "
         << loaded_epochs_ << " epochs)" << (cfg_.epochs == 0 ? ": evaluation only" : "") << "\n";
  }
  out_ << std::flush;
}

// One batch: a full one through the step graph (captured after the first eager full step) or
// eagerly; a partial one eagerly, in its own tensors.
void Trainer::train_batch(const data::BatchView& b, ProgressBar& progress) {
  const auto step_on_device = [&](const Tensor& images, const Tensor& labels, int64_t n) {
    const StepResult r = (*step_)(images, labels);
    tally_->add_on_device(r.loss, r.logits, labels, n);
  };
  if (b.size != cfg_.batch) {
    BatchTensors t = to_tensors(b, device_, DType::F32);
    step_on_device(t.images, t.labels, b.size);
    return;
  }
  copy_batch(b, fixed_images_, fixed_labels_);
  if (graph_wanted_ && !graph_failed_ && !graph_->captured() && eager_full_steps_ >= 1) {
    if (!graph_->capture([&] { step_on_device(fixed_images_, fixed_labels_, b.size); })) {
      DSC_CHECK(cfg_.graph != "on",
                "--graph on: capturing the training step failed: ", graph_->failure());
      graph_failed_ = true;
      graph_status_ = "off (capture failed: " + graph_->failure() + ")";
      progress.finish();
      out_ << "warning    step graph capture failed (" << graph_->failure()
           << "); training goes on without it\n"
           << std::flush;
    }
  }
  if (graph_->captured()) {
    graph_->replay();
    ++graph_replays_;
  } else {
    step_on_device(fixed_images_, fixed_labels_, b.size);
    ++eager_full_steps_;
  }
}

EpochResult Trainer::train_epoch(int epoch) {
  const auto t_epoch = Clock::now();
  model_->train();
  loader_->start_epoch(epoch - 1);
  const bool bar = cfg_.progress && &out_ == &std::cout && isatty(fileno(stdout));
  ProgressBar progress(out_, bar, epoch, cfg_.epochs, steps_per_epoch_);
  tally_->reset();
  int64_t step = 0, timed_images = 0;
  const int64_t skipped_before = scaler_->skipped();
  Clock::time_point t_timed = Clock::now();
  // Epoch 1 leaves its first steps (warm-up) out of images/sec.
  const int64_t first_timed =
      epoch == 1 ? std::min<int64_t>(cfg_.warmup_steps, steps_per_epoch_ - 1) : 0;
  if (monitor_) monitor_->start();
  for (data::BatchView b; loader_->next(b); ++step) {
    if (step == first_timed) {
      kernels(device_).synchronize();
      t_timed = Clock::now();
      timed_images = 0;
    }
    opt_->set_lr(schedule_.lr_at(update_));
    train_batch(b, progress);
    if (!amp_ || !lr_varies_ || scaler_->flag().item() == 0.0) ++update_;
    tally_->count(b.size);
    timed_images += b.size;
    if (progress.due(step + 1))
      progress.update(step + 1, tally_->mean_loss(), timed_images / seconds_since(t_timed));
  }
  kernels(device_).synchronize();
  const double timed_s = seconds_since(t_timed);
  const GpuUtilization util = monitor_ ? monitor_->stop() : GpuUtilization{};
  progress.finish();
  EpochResult e;
  e.epoch = epoch;
  e.train_loss = tally_->mean_loss();
  e.train_acc = tally_->accuracy();
  e.images_per_sec = timed_images / timed_s;
  e.data_wait_s = loader_->wait_seconds();
  e.lr = opt_->lr();
  e.loss_scale = scaler_->scale();
  e.skipped_steps = scaler_->skipped() - skipped_before;
  const EvalResult ev = evaluate_on(test_);
  e.test_loss = ev.loss;
  e.test_acc = ev.acc;
  e.wall_s = seconds_since(t_epoch);
  if (util.valid) {
    e.sm_util = util.sm_percent;
    e.mem_util = util.memory_percent;
  }
  std::ostringstream line;
  line << std::fixed << "epoch " << epoch << "/" << cfg_.epochs << "  train loss "
       << std::setprecision(4) << e.train_loss << " acc " << std::setprecision(2)
       << 100 * e.train_acc << "%  test loss " << std::setprecision(4) << e.test_loss << " acc "
       << std::setprecision(2) << 100 * e.test_acc << "%  " << std::setprecision(1)
       << e.images_per_sec << " img/s  data wait " << std::setprecision(2) << e.data_wait_s
       << " s  wall " << std::setprecision(1) << e.wall_s << " s";
  if (amp_) line << "  loss scale " << e.loss_scale << ", skipped " << e.skipped_steps;
  if (monitor_) line << "  GPU " << util.str();
  out_ << line.str() << "\n" << std::flush;
  log_->write({{"type", "epoch"},
               {"epoch", epoch},
               {"train_loss", e.train_loss},
               {"train_acc", e.train_acc},
               {"test_loss", e.test_loss},
               {"test_acc", e.test_acc},
               {"images_per_sec", e.images_per_sec},
               {"data_wait_s", e.data_wait_s},
               {"wall_s", e.wall_s},
               {"lr", e.lr},
               {"loss_scale", e.loss_scale},
               {"skipped_steps", e.skipped_steps},
               {"sm_util", util.valid ? nlohmann::json(util.sm_percent) : nlohmann::json()},
               {"mem_util", util.valid ? nlohmann::json(util.memory_percent) : nlohmann::json()}});
  return e;
}

EvalResult Trainer::evaluate_on(const data::Dataset& ds) {
  return evaluate(*model_, ds, cfg_.eval_batch, normalization_of(cfg_), device_, compute_,
                  opt_->parameters().values());
}

// The seed's table. As the seed: the first two epochs are warm-up (fewer when the run is shorter;
// at least the last epoch is timed), and images/sec is the best (peak) and median of the timed
// epochs; "train acc" is the accuracy on the whole training set evaluated after training.
void Trainer::write_summary(TrainResult& result) {
  const int first_timed = std::min(2, cfg_.epochs - 1) + 1;
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
  result.peak_images_per_sec = ips.empty() ? 0.0 : *std::max_element(ips.begin(), ips.end());
  result.median_images_per_sec = median(ips);
  result.train_acc = evaluate_on(train_).acc;
  // With --epochs 0 (evaluating a --load checkpoint) no epoch has measured the test set yet.
  const EvalResult test_eval = result.epochs.empty() ? evaluate_on(test_)
                                                     : EvalResult{result.epochs.back().test_loss,
                                                                  result.epochs.back().test_acc};
  result.test_acc = test_eval.acc;
  result.test_loss = test_eval.loss;
  result.wall_s = seconds_since(t_start_);
  out_ << "\n| model | device | precision | batch | params | peak img/s | median img/s | train "
          "acc | test acc | SM util | memory util |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n"
       << "| " << cfg_.model << " | " << device_name(device_) << " | " << (amp_ ? "amp" : "fp32")
       << " | " << cfg_.batch << " | " << with_commas(double(params_)) << " | "
       << with_commas(result.peak_images_per_sec) << " | "
       << with_commas(result.median_images_per_sec) << " | " << std::fixed << std::setprecision(1)
       << 100 * result.train_acc << "% | " << 100 * result.test_acc << "% | "
       << percent_or_na(result.sm_util) << " | " << percent_or_na(result.mem_util) << " |\n"
       << std::flush;
  log_->write(
      {{"type", "summary"},
       {"framework", "ours"},
       {"model", cfg_.model},
       {"device", device_name(device_)},
       {"precision", amp_ ? "amp" : "fp32"},
       {"batch", cfg_.batch},
       {"params", params_},
       {"trainable_params", trainable_params_},
       {"gpu", device_ == Device::CUDA ? nlohmann::json(gpu_description()) : nlohmann::json()},
       {"algorithms", algorithm_lines(device_)},
       {"images_per_sec", result.peak_images_per_sec},  // the seed's: the best timed epoch
       {"peak_images_per_sec", result.peak_images_per_sec},
       {"median_images_per_sec", result.median_images_per_sec},
       {"sm_util", json_or_null(result.sm_util)},
       {"mem_util", json_or_null(result.mem_util)},
       {"timed_epochs", timed_epochs},
       {"train_acc", result.train_acc},
       {"test_acc", result.test_acc},
       {"test_loss", result.test_loss},
       {"skipped_steps", scaler_->skipped()},
       {"graph", graph_status_},
       {"graph_replays", graph_replays_},
       {"wall_s", result.wall_s},
       {"date", now_iso8601()},
       {"command", cfg_.command}});
}

}  // namespace dsc
