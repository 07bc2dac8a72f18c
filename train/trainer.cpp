// The Trainer (see trainer.h): setup in the constructor, then header, epochs and summary. One
// training step is a TrainStep (step.h) on a batch already on the device; on a GPU full batches
// replay one captured step graph. Tested end to end on real CIFAR-10 images in tests/train/.
#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/error.h"
#include "core/format.h"
#include "core/gpu_info.h"
#include "core/gpu_monitor.h"
#include "data/cifar10.h"
#include "layers/checkpoint.h"
#include "layers/model_registry.h"
#include "train/data_parallel.h"
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
// the weights were trained, those of a --load checkpoint included; the losses and accuracies are
// those of the last finished epoch (absent for a checkpoint taken inside the first one).
nlohmann::json checkpoint_meta(const TrainConfig& c, const EpochResult* e, int epochs_trained,
                               const char* precision) {
  nlohmann::json meta = {{"model", c.model},
                         {"epoch", epochs_trained},
                         {"seed", c.seed},
                         {"batch", c.batch},
                         {"precision", precision},
                         {"loaded_from", c.load.empty() ? nlohmann::json() : nlohmann::json(c.load)},
                         {"command", c.command},
                         {"git_commit", git_commit()},
                         {"version", DSC_VERSION},
                         {"date", now_iso8601()}};
  if (e) {
    meta["train_loss"] = e->train_loss;
    meta["train_acc"] = e->train_acc;
    meta["test_loss"] = e->test_loss;
    meta["test_acc"] = e->test_acc;
  }
  return meta;
}

// The stop request of request_stop / StopSignals: 0, or the signal that asked.
std::atomic<int> g_stop_signal{0};
struct sigaction g_old_int, g_old_term;

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) {  // the second signal: end now, as if unhandled
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

std::string signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal " + std::to_string(sig);
}

// Steps between two reads of the numerical health on a GPU (each read waits for the device).
constexpr int64_t kHealthInterval = 50;
// Mixed precision stops after this many consecutive skipped steps even if the scale is >= 1.
constexpr int64_t kMaxSkippedRun = 50;

int64_t meta_int(const nlohmann::json& t, const char* key, const std::string& path) {
  DSC_CHECK(t.contains(key) && t[key].is_number_integer(), "--resume: checkpoint '", path,
            "': its training state has no integer '", key, "' (a damaged or foreign file)");
  return t[key].get<int64_t>();
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
  // Several ranks (train/data_parallel.h): each binds its GPU before anything else touches one.
  dp_ = std::make_unique<DataParallel>(dist::world());
  const bool rank_gpu = dp_->active() && cfg_.device != "cpu" && dp_->comm().bind_gpu();
  device_ = resolve_device(cfg_.device);
  DSC_CHECK(!dp_->active() || device_ == Device::CPU || rank_gpu,
            "several ranks on GPUs need NCCL, and this build of dsc has none: train with "
            "--device cpu, or rebuild with NCCL");
  DSC_CHECK(!cfg_.profile.enabled || !dp_->active(),
            "--profile times one process's step: run it without mpirun (or with -np 1)");
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
  dp_->validate(cfg_, train_.n);
  local_batch_ = cfg_.batch / dp_->size();
  // ---- model and optimizer ----
  ModelSpec spec;
  spec.seed = cfg_.seed;
  spec.in_channels = data::kChannels;
  spec.image = data::kHeight;
  spec.classes = train_.num_classes();
  model_ = make_model(cfg_.model, spec);
  if (!cfg_.load.empty()) loaded_ = load_checkpoint(*model_, cfg_.load);
  if (!cfg_.resume.empty()) resumed_ = load_checkpoint(*model_, cfg_.resume);
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
  lo.shard = dp_->rank();
  lo.shards = dp_->size();
  loader_ = std::make_unique<data::BatchLoader>(train_, lo);
  steps_per_epoch_ = loader_->batches_per_epoch();
  schedule_ =
      LrSchedule{parse_schedule_kind(cfg_.schedule), cfg_.lr, cfg_.warmup_epochs * steps_per_epoch_,
                 cfg_.epochs * steps_per_epoch_, 0.0f};
  optimizer_desc_ = opt_->describe();
  scaler_ = std::make_unique<LossScaler>(LossScalerOptions{.enabled = amp_}, device_);
  step_ = std::make_unique<TrainStep>(*model_, *opt_, *scaler_, compute_);
  if (dp_->active()) {
    step_->set_reducer(dp_.get());
    dp_->set_buckets(model_->parameters(), opt_->parameters().grads(), cfg_.bucket_kb * 1024);
  }
  if (cfg_.sync_bn) dp_->sync_batch_norm(*model_);
  // The schedule advances with applied updates only; when the rate varies, knowing whether an AMP
  // step was skipped costs one synchronisation per step, otherwise no step waits for the GPU.
  lr_varies_ = schedule_.kind != ScheduleKind::Constant || schedule_.warmup_steps > 0;
  graph_wanted_ = device_ == Device::CUDA && cfg_.graph != "off" && !lr_varies_;
  graph_status_ = device_ != Device::CUDA ? "off (cpu)"
                  : cfg_.graph == "off"   ? "off (--graph off)"
                  : lr_varies_            ? "off (the learning rate varies)"
                                          : "on";
  graph_ = std::make_unique<StepGraph>(device_);
  fixed_images_ = Tensor::empty({local_batch_, data::kChannels, data::kHeight, data::kWidth},
                                DType::F32, device_);
  fixed_labels_ = Tensor::empty({local_batch_}, DType::I32, device_);
  tally_ = std::make_unique<DeviceTally>(device_);
  nonfinite_ = Tensor::zeros({1}, DType::F32, device_);
  if (!cfg_.save.empty() || !cfg_.resume.empty()) {
    uint32_t crc = crc32(train_.labels.data(), train_.labels.size());
    crc = crc32(train_.pixels.data(), train_.pixels.size(), crc);
    std::ostringstream hex;
    hex << std::hex << std::setw(8) << std::setfill('0') << crc;
    data_fingerprint_ = hex.str();
  }
  if (!cfg_.resume.empty()) resume_from(cfg_.resume);
  // Opened last, so that every check above fails before a log is created or truncated; a resumed
  // run appends to the logs it continues. Fails here, before any training, if a path is unwritable.
  // With several ranks only rank 0 writes.
  log_ = std::make_unique<RunLog>(dp_->rank() == 0 ? cfg_.log : "",
                                  dp_->rank() == 0 ? cfg_.csv : "", !cfg_.resume.empty());
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
  health_steps_ = (first_epoch_ - 1) * steps_per_epoch_ + first_batch_;
  health_skipped_ = scaler_->skipped();
  {  // a signal while the data was read: stop before training (there is nothing new to save)
    ProgressBar no_bar(out_, false, first_epoch_, cfg_.epochs, steps_per_epoch_);
    stop_if_requested(first_epoch_, first_batch_, no_bar, true);
  }
  for (int epoch = first_epoch_; epoch <= cfg_.epochs; ++epoch) {
    const EpochResult e = train_epoch(epoch, epoch == first_epoch_ ? first_batch_ : 0);
    result.epochs.push_back(e);
    if (epoch == first_epoch_) {
      const std::vector<std::string> lines = algorithm_lines(device_);
      for (const std::string& l : lines) out_ << "algorithm  " << l << "\n";
      if (!lines.empty()) log_->write({{"type", "algorithms"}, {"lines", lines}});
    }
    if (!cfg_.save.empty()) {
      save(epoch, steps_per_epoch_, &e);
      out_ << "saved      " << cfg_.save << " (epoch " << loaded_epochs_ + epoch << ")\n";
    }
    out_ << std::flush;
    ProgressBar no_bar(out_, false, epoch, cfg_.epochs, steps_per_epoch_);
    if (epoch < cfg_.epochs) stop_if_requested(epoch + 1, 0, no_bar, true);
  }
  write_summary(result);
  if (cfg_.profile.enabled) profile();
  return result;
}

void Trainer::write_header() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::string gpu_index = device_ == Device::CUDA && dp_->active()
                                    ? ":" + std::to_string(dp_->comm().local_rank())
                                    : "";
  rank_devices_ = dp_->gather(device_name(device_) + gpu_index + " on " + host);
  nlohmann::json header = {
      {"type", "header"},
      {"framework", "ours"},
      {"model", cfg_.model},
      {"params", params_},
      {"trainable_params", trainable_params_},
      {"device", device_name(device_)},
      {"threads", cpu::num_threads()},
      {"world_size", dp_->size()},
      {"engine", dp_->comm().engine()},
      {"rank_devices", rank_devices_},
      {"sync_bn", cfg_.sync_bn},
      {"gradient_buckets", dp_->bucket_sizes()},
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
      {"resume", cfg_.resume.empty() ? nlohmann::json() : nlohmann::json(cfg_.resume)},
      {"resume_at", cfg_.resume.empty() ? nlohmann::json()
                                        : nlohmann::json({{"epoch", first_epoch_},
                                                          {"batch", first_batch_},
                                                          {"update", update_}})},
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
       << (dp_->active() ? "ranks      " + std::to_string(dp_->size()) + " (" +
                               dp_->comm().engine() + "), " + std::to_string(local_batch_) +
                               " images of each batch per rank, BatchNorm statistics " +
                               (cfg_.sync_bn ? "over all ranks (--sync-bn)" : "per rank") + ", " +
                               dp_->describe_buckets() + "\n"
                         : "")
       << "recipe     batch " << cfg_.batch << ", " << cfg_.epochs << " epochs, "
       << opt_->describe() << ", lr schedule " << schedule_.describe() << ", augment "
       << (cfg_.augment ? "on" : "off") << ", inputs "
       << (cfg_.normalize == "scale" ? "x/127.5 - 1" : "standardized") << "\n"
       << "data       " << data_path_ << ": " << with_commas(double(train_.n)) << " train, "
       << with_commas(double(test_.n)) << " test images\n"
       << "build      " << library_versions() << ", commit " << git_commit() << "\n";
  if (dp_->active()) {
    for (int r = 0; r < dp_->size(); ++r)
      out_ << "rank " << r << "     " << rank_devices_[r] << "\n";
  }
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
  if (!cfg_.resume.empty() && first_epoch_ > cfg_.epochs) {
    // A finished run: nothing to train, the summary evaluates what it left.
    out_ << "resumed    " << cfg_.resume << ": its run finished all " << first_epoch_ - 1
         << " epochs; nothing is left to train (raise --epochs to train on)\n";
  } else if (!cfg_.resume.empty()) {
    out_ << "resumed    " << cfg_.resume << ": epoch " << first_epoch_ << " after step "
         << first_batch_ << "/" << steps_per_epoch_ << " (" << update_ << " updates so far)\n";
  }
  out_ << std::flush;
}

// One batch: a full one through the step graph (captured after the first eager full step) or
// eagerly; a partial one eagerly, in its own tensors.
void Trainer::train_batch(const data::BatchView& b, ProgressBar& progress) {
  const auto step_on_device = [&](const Tensor& images, const Tensor& labels, int64_t n) {
    const StepResult r = (*step_)(images, labels);
    tally_->add_on_device(r.loss, r.logits, labels, n);
    // fp32: a sticky device flag for a non-finite gradient, read by check_health (mixed precision
    // has the loss scaler's check instead).
    if (!amp_) kernels(device_).check_finite(opt_->parameters().grads(), nonfinite_);
    last_loss_ = r.loss;
  };
  if (b.global_size != cfg_.batch) {
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

EpochResult Trainer::train_epoch(int epoch, int64_t first_batch) {
  const auto t_epoch = Clock::now();
  model_->train();
  loader_->start_epoch(epoch - 1, first_batch);
  const bool bar = cfg_.progress && &out_ == &std::cout && isatty(fileno(stdout));
  ProgressBar progress(out_, bar, epoch, cfg_.epochs, steps_per_epoch_);
  // A resumed epoch goes on with the sums and counts its checkpoint restored.
  if (first_batch == 0) {
    tally_->reset();
    epoch_skipped_base_ = scaler_->skipped();
  }
  int64_t step = first_batch, timed_images = 0;
  Clock::time_point t_timed = Clock::now();
  // The first epoch of a run leaves its first steps (warm-up) out of images/sec.
  const int64_t first_timed =
      epoch == first_epoch_
          ? first_batch + std::min<int64_t>(cfg_.warmup_steps, steps_per_epoch_ - first_batch - 1)
          : 0;
  if (monitor_) monitor_->start();
  for (data::BatchView b; loader_->next(b); ++step) {
    if (step == first_timed) {
      kernels(device_).synchronize();
      t_timed = Clock::now();
      timed_images = 0;
    }
    opt_->set_lr(schedule_.lr_at(update_));
    dp_->begin_step((epoch - 1) * steps_per_epoch_ + step + 1, b.size, b.global_size);
    train_batch(b, progress);
    if (!amp_ || !lr_varies_ || scaler_->flag().item() == 0.0) ++update_;
    tally_->count(b.size);
    timed_images += b.global_size;  // every rank's images: the global rate
    const int64_t done = step + 1;
    check_health(epoch, done, progress, false);
    stop_if_requested(epoch, done, progress, false);
    if (cfg_.save_every > 0 && done < steps_per_epoch_ &&
        ((epoch - 1) * steps_per_epoch_ + done) % cfg_.save_every == 0)
      save(epoch, done, nullptr);
    if (progress.due(done))
      progress.update(done, tally_->mean_loss(), timed_images / seconds_since(t_timed));
  }
  check_health(epoch, step, progress, true);
  kernels(device_).synchronize();
  const double timed_s = seconds_since(t_timed);
  const GpuUtilization util = monitor_ ? monitor_->stop() : GpuUtilization{};
  progress.finish();
  EpochResult e;
  e.epoch = epoch;
  e.train_loss = tally_->mean_loss();
  e.train_acc = tally_->accuracy();
  std::vector<uint32_t> replica_crcs;
  if (dp_->active()) {  // the sums of every rank; and the replicas must still be identical
    const EvalResult m = dp_->epoch_metrics(*tally_);
    e.train_loss = m.loss;
    e.train_acc = m.acc;
    replica_crcs = dp_->check_replicas(opt_->parameters().values());
    const DataParallel::Waits w = dp_->take_waits();
    e.allreduce_exposed_s = device_ == Device::CPU ? w.exposed_s : -1;  // (GPU: host queueing)
    e.rank_skew_s = device_ == Device::CPU ? w.skew_s : -1;
  }
  e.images_per_sec = timed_images / timed_s;
  e.data_wait_s = loader_->wait_seconds();
  e.lr = opt_->lr();
  e.loss_scale = scaler_->scale();
  e.skipped_steps = scaler_->skipped() - epoch_skipped_base_;
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
  if (e.allreduce_exposed_s >= 0)
    line << "  allreduce exposed " << std::setprecision(1) << 1e3 * e.allreduce_exposed_s
         << " ms, rank skew " << 1e3 * e.rank_skew_s << " ms";
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
               {"allreduce_exposed_s", json_or_null(e.allreduce_exposed_s)},
               {"rank_skew_s", json_or_null(e.rank_skew_s)},
               {"sm_util", util.valid ? nlohmann::json(util.sm_percent) : nlohmann::json()},
               {"mem_util", util.valid ? nlohmann::json(util.memory_percent) : nlohmann::json()}});
  if (dp_->active())  // the CRC-32 of each rank's weights: equal, or check_replicas threw
    log_->write({{"type", "replicas"}, {"epoch", epoch}, {"crc32", replica_crcs}});
  return e;
}

// With several ranks each evaluates its share of ds with rank 0's BatchNorm running statistics.
EvalResult Trainer::evaluate_on(const data::Dataset& ds) {
  dp_->broadcast_buffers(*model_);
  return dp_->evaluate(ds, [&](const data::Dataset& part) {
    return evaluate(*model_, part, cfg_.eval_batch, normalization_of(cfg_), device_, compute_,
                    opt_->parameters().values());
  });
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

// ---- checkpoints and resume --------------------------------------------------------------------
//
// A checkpoint written by --save holds the model and, as "state" tensors, the optimizer's state
// (update count, Adam's moments or SGD's momentum), the loss scaler's and the running sums of the
// epoch in progress; its meta records where the run stands (the epoch, the steps done in it, the
// updates applied, the images counted) and what identifies the run. The data order and the
// augmentation draws are functions of (seed, epoch, batch) (data/loader.h), so the position is
// the whole random state: a resumed run continues bit for bit (tests/train/test_resume.cpp).

std::vector<NamedTensor> Trainer::training_state() const {
  std::vector<NamedTensor> s = opt_->state();
  for (const NamedTensor& t : scaler_->state()) s.push_back(t);
  for (const NamedTensor& t : tally_->state()) s.push_back(t);
  return s;
}

nlohmann::json Trainer::run_identity() const {
  return {{"model", cfg_.model},
          {"batch", cfg_.batch},
          {"optimizer", optimizer_desc_},
          {"schedule", schedule_.describe()},
          {"precision", amp_ ? "amp" : "fp32"},
          {"seed", cfg_.seed},
          {"augment", cfg_.augment},
          {"normalize", cfg_.normalize},
          {"train_images", train_.n},
          {"data_fingerprint", data_fingerprint_}};
}

void Trainer::resume_from(const std::string& path) {
  DSC_CHECK(resumed_.is_object() && resumed_.contains("training") &&
                resumed_["training"].is_object(),
            "--resume: checkpoint '", path,
            "' holds no training state (a model-only checkpoint): start from its weights with "
            "--load ", path);
  const nlohmann::json& t = resumed_["training"];
  DSC_CHECK(t.contains("run") && t["run"].is_object(), "--resume: checkpoint '", path,
            "': its training state does not say which run it belongs to");
  const nlohmann::json saved = t["run"], now = run_identity();
  std::string differs;
  for (auto it = now.begin(); it != now.end(); ++it) {
    const nlohmann::json was = saved.value(it.key(), nlohmann::json());
    if (was == it.value()) continue;
    differs += std::string(differs.empty() ? "" : "; ") + it.key() + " " +
               (was.is_null() ? "unknown" : was.dump()) + " (this run: " + it.value().dump() + ")";
  }
  DSC_CHECK(differs.empty(), "--resume: checkpoint '", path,
            "' belongs to a different run: ", differs,
            ". Resume with the flags and data it was saved with");
  load_training_state(path, training_state());
  first_epoch_ = int(meta_int(t, "epoch", path));
  first_batch_ = meta_int(t, "batch", path);
  update_ = meta_int(t, "update", path);
  tally_->set_seen(meta_int(t, "seen", path));
  if (dp_->active()) {  // the checkpoint's sums are every rank's: each takes its own back
    std::vector<double> each;
    if (t.contains("rank_sums") && t["rank_sums"].is_array())
      for (const nlohmann::json& v : t["rank_sums"])
        if (v.is_number()) each.push_back(v.get<double>());
    RankSums::restore(*dp_, *tally_, each);
  }
  epoch_skipped_base_ = meta_int(t, "epoch_skipped_base", path);
  loaded_epochs_ = int(meta_int(t, "epochs_before", path));
  DSC_CHECK(first_epoch_ >= 1 && first_batch_ >= 0 && first_batch_ <= steps_per_epoch_,
            "--resume: checkpoint '", path, "': position epoch ", first_epoch_, " step ",
            first_batch_, " is outside a run of ", steps_per_epoch_, " steps per epoch");
}

void Trainer::save(int epoch, int64_t batches_done, const EpochResult* done) {
  std::optional<RankSums> every_rank;  // several ranks: rank 0 saves the sums of every rank
  if (dp_->active()) {
    every_rank.emplace(*dp_, *tally_);
    if (dp_->rank() != 0) return;
  }
  const int epochs_trained = loaded_epochs_ + (done ? epoch : epoch - 1);
  nlohmann::json meta = checkpoint_meta(cfg_, done, epochs_trained, amp_ ? "amp" : "fp32");
  // A finished epoch resumes at the start of the next one; otherwise mid-way through this one
  // (after its last step but before its evaluation when batches_done is every step).
  meta["training"] = {{"epoch", done ? epoch + 1 : epoch},
                      {"batch", done ? 0 : batches_done},
                      {"update", update_},
                      {"seen", done ? 0 : tally_->seen()},
                      {"epoch_skipped_base", epoch_skipped_base_},
                      {"epochs_before", loaded_epochs_},
                      {"epochs", cfg_.epochs},
                      {"run", run_identity()}};
  if (every_rank && !done) meta["training"]["rank_sums"] = every_rank->each();
  save_checkpoint(*model_, cfg_.save, meta, training_state(), SaveOptions{cfg_.keep});
  log_->write({{"type", "checkpoint"},
               {"path", cfg_.save},
               {"epoch", epoch},
               {"batch", batches_done},
               {"date", now_iso8601()}});
}

// ---- interruption ---------------------------------------------------------------------------------

void request_stop(int signal) { g_stop_signal.store(signal); }

StopSignals::StopSignals() {
  g_stop_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

void Trainer::stop_if_requested(int epoch, int64_t batches_done, ProgressBar& progress,
                                bool saved) {
  // Every rank stops at the same step when any rank was asked to (mpirun forwards signals).
  const int sig = dp_->active() ? dp_->max(g_stop_signal.load()) : g_stop_signal.load();
  if (sig == 0) return;
  progress.finish();
  kernels(device_).synchronize();
  if (!cfg_.save.empty() && !saved) save(epoch, batches_done, nullptr);
  std::ostringstream what;
  what << "interrupted by " << signal_name(sig);
  if (batches_done == 0 && epoch == 1)
    what << " before training";
  else if (batches_done == 0)
    what << " after epoch " << epoch - 1;
  else
    what << " in epoch " << epoch << " after step " << batches_done << "/" << steps_per_epoch_;
  log_->write({{"type", "interrupted"},
               {"signal", signal_name(sig)},
               {"epoch", epoch},
               {"batch", batches_done},
               {"checkpoint", cfg_.save.empty() ? nlohmann::json() : nlohmann::json(cfg_.save)},
               {"date", now_iso8601()}});
  out_ << what.str()
       << (cfg_.save.empty() ? "; nothing saved (no --save)"
                             : "; checkpoint " + cfg_.save + " (continue with --resume " +
                                   cfg_.save + ")")
       << "\n"
       << std::flush;
  g_stop_signal.store(0);
  throw TrainingInterrupted(sig, what.str());
}

// ---- numerical health -----------------------------------------------------------------------------

void Trainer::check_health(int epoch, int64_t batches_done, ProgressBar& progress, bool force) {
  const bool every_step = device_ == Device::CPU;
  if (!every_step && !force && batches_done % kHealthInterval != 0) return;
  const int64_t global = (epoch - 1) * steps_per_epoch_ + batches_done;
  const int64_t since = health_steps_;
  health_steps_ = global;
  if (global == since) return;
  const std::string when =
      global - since == 1
          ? "at step " + std::to_string(batches_done)
          : "between steps " + std::to_string(batches_done - (global - since) + 1) + " and " +
                std::to_string(batches_done);
  if (!amp_) {
    if (nonfinite_.item() == 0.0) return;
    progress.finish();
    // The first parameter, in the model's order, whose gradient holds a NaN or an inf.
    std::string first = "(every gradient is finite: only the loss is not)";
    for (const NamedTensor& p : model_->parameters()) {
      const Tensor g = p.tensor.grad();
      if (!g.defined()) continue;
      const Tensor h = g.device() == Device::CPU ? g : g.to(Device::CPU);
      const float* v = h.data<float>();
      if (!std::all_of(v, v + h.numel(), [](float x) { return std::isfinite(x); })) {
        first = "'" + p.name + "'";
        break;
      }
    }
    const double loss = last_loss_.defined() ? last_loss_.item() : std::nan("");
    log_->write({{"type", "stopped"},
                 {"reason", "non-finite gradient"},
                 {"epoch", epoch},
                 {"batch", batches_done},
                 {"parameter", first},
                 {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(std::to_string(loss))},
                 {"date", now_iso8601()}});
    std::ostringstream msg;
    msg << "training stopped: a gradient became NaN or inf " << when << " of epoch " << epoch
        << " (step " << global << " of the run); the first parameter with a non-finite gradient is "
        << first << ", the step's loss " << loss
        << ". The weights after that step are not finite, so nothing more was saved; lower --lr "
           "or check the inputs";
    throw Error(msg.str());
  }
  const int64_t skipped = scaler_->skipped();
  const int64_t new_skipped = skipped - health_skipped_;
  health_skipped_ = skipped;
  skip_run_ = new_skipped == global - since ? skip_run_ + new_skipped : 0;
  const float scale = scaler_->scale();
  if (scale >= 1.0f && skip_run_ < kMaxSkippedRun) return;
  progress.finish();
  log_->write({{"type", "stopped"},
               {"reason", "loss scale collapsed"},
               {"epoch", epoch},
               {"batch", batches_done},
               {"loss_scale", scale},
               {"consecutive_skipped", skip_run_},
               {"date", now_iso8601()}});
  std::ostringstream msg;
  msg << "training stopped: the mixed-precision loss scale collapsed to " << scale << " after "
      << skip_run_ << " consecutive skipped steps, " << when << " of epoch " << epoch
      << ": the gradients are not finite even at a small scale, so the loss or the weights are "
         "(NaN or inf inputs, a diverging learning rate). Lower --lr, or train with --precision "
         "fp32 to find the first layer with a non-finite gradient";
  throw Error(msg.str());
}

}  // namespace dsc

