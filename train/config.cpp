// Checks of a TrainConfig before anything is read or trained (see trainer.h): every value in
// range, the model registered, --load's checkpoint readable and holding that model, --resume's a
// training checkpoint of that model, --save's folder writable. Tested in tests/train/test_train.cpp and test_train_checkpoint.cpp.
#include <cmath>

#include "core/error.h"
#include "layers/checkpoint.h"
#include "layers/model_registry.h"
#include "optim/schedule.h"
#include "train/trainer.h"

namespace dsc {
namespace {

// The model name a checkpoint's meta records ("" when it records none).
std::string saved_model(const nlohmann::json& meta) {
  if (!meta.is_object() || !meta.contains("model") || !meta["model"].is_string()) return "";
  return meta["model"].get<std::string>();
}

void check_checkpoint_flags(const TrainConfig& c) {
  if (!c.load.empty()) {
    const std::string saved = saved_model(read_checkpoint_meta(c.load));
    DSC_CHECK(saved.empty() || saved == c.model, "--load: checkpoint '", c.load, "' holds a '",
              saved, "' model, but --model is '", c.model, "' (run with --model ", saved, ")");
  }
  DSC_CHECK(c.load.empty() || c.resume.empty(),
            "--load and --resume exclude each other: --resume continues a run (its optimizer, "
            "position and logs), --load only starts from a checkpoint's weights");
  if (!c.resume.empty()) {
    const nlohmann::json meta = read_checkpoint_meta(c.resume);
    DSC_CHECK(meta.is_object() && meta.contains("training"), "--resume: checkpoint '", c.resume,
              "' holds no training state (a model-only checkpoint): start from its weights "
              "with --load ",
              c.resume);
    const std::string saved = saved_model(meta);
    DSC_CHECK(saved == c.model, "--resume: checkpoint '", c.resume, "' holds a '", saved,
              "' model, but --model is '", c.model, "' (run with --model ", saved, ")");
  }
  DSC_CHECK(c.save_every >= 0, "--save-every must be >= 0 (0 = after every epoch only), got ",
            c.save_every);
  DSC_CHECK(c.keep >= 1, "--keep must be at least 1, got ", c.keep);
  DSC_CHECK(c.save.empty() ? c.save_every == 0 && c.keep == 1 : true,
            c.save_every ? "--save-every" : "--keep", " needs --save PATH (where to write)");
  if (!c.save.empty()) {
    try {
      check_checkpoint_writable(c.save);
    } catch (const Error& e) {
      throw Error(std::string("--save: ") + e.what());
    }
  }
}

}  // namespace

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
  DSC_CHECK(c.device == "cpu" || c.device == "cuda" || c.device == "auto",
            "--device: unknown device '", c.device, "' (expected cpu, cuda or auto)");
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
  DSC_CHECK(c.warmup_steps >= 0, "--warmup-steps must be >= 0, got ", c.warmup_steps);
  DSC_CHECK(c.eval_batch >= 1, "--eval-batch must be at least 1, got ", c.eval_batch);
  DSC_CHECK(c.bucket_kb >= 0 && c.bucket_kb <= (int64_t(1) << 30),
            "--bucket-kb must be between 0 (one average after the backward) and 2^30, got ",
            c.bucket_kb);
  if (!model_registered(c.model)) make_model(c.model, ModelSpec{});  // throws, listing the names
  parse_schedule_kind(c.schedule);
  validate(c.profile);
  check_checkpoint_flags(c);
}

}  // namespace dsc
