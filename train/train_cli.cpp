// The `train` command line (see trainer.h): CLI11 flags -> TrainConfig, errors as one line and a
// non-zero exit. Any registered model (layers/model_registry.h) can be trained, so a user program
// that registers its own and calls train_main gets every flag. Tested in
// tests/train/test_train.cpp.
#include <CLI/CLI.hpp>
#include <iostream>

#include "core/error.h"
#include "data/dataset.h"
#include "layers/model_registry.h"
#include "train/data_parallel.h"
#include "train/kernel_flags.h"
#include "train/run_log.h"
#include "train/trainer.h"

namespace dsc {

int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  TrainConfig c;
  CLI::App app{
      "Train a model (the seed's 4-layer CNN, normal or depthwise-separable, or any registered "
      "one) on CIFAR-10 and report images/sec and accuracy.\nDefaults follow the seed's recipe: "
      "Adam (lr 1e-3), 5 epochs, batch 128, no augmentation, inputs scaled to [-1, 1].",
      "train"};
  std::vector<std::string> compare;
  std::string models;
  for (const auto& [name, description] : registered_models())
    models += "\n  " + name + ": " + description;
  app.add_option("--model", c.model, "model to train, one of:" + models)->capture_default_str();
  app.add_option("--batch", c.batch, "batch size")->capture_default_str();
  app.add_option("--epochs", c.epochs, "training epochs (0 with --load: evaluate only)")
      ->capture_default_str();
  app.add_option("--lr", c.lr, "base learning rate")->capture_default_str();
  app.add_option("--optimizer", c.optimizer, "adam | sgd")->capture_default_str();
  app.add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
  app.add_flag("--nesterov", c.nesterov, "SGD with Nesterov momentum");
  app.add_option("--weight-decay", c.weight_decay, "decoupled weight decay")->capture_default_str();
  app.add_option("--schedule", c.schedule, "learning-rate schedule: constant | cosine | linear")
      ->capture_default_str();
  app.add_option("--warmup-epochs", c.warmup_epochs, "linear learning-rate warm-up epochs")
      ->capture_default_str();
  app.add_flag("--augment", c.augment, "random crop (4-pixel padding) and horizontal flip");
  app.add_option("--normalize", c.normalize, "scale (x/127.5 - 1) | standardize (per channel)")
      ->capture_default_str();
  app.add_option("--device", c.device, "cpu | cuda | auto (a GPU when there is one)")
      ->capture_default_str();
  app.add_option("--precision", c.precision,
                 "fp32 | amp (f16 compute, f32 master weights, dynamic loss scaling) | auto "
                 "(amp on a GPU, fp32 on the CPU)")
      ->capture_default_str();
  app.add_option("--graph", c.graph,
                 "step graphs on a GPU: capture one training step and replay it for every full "
                 "batch, one launch per step: auto (when the learning rate is constant) | on (an "
                 "error when not possible) | off")
      ->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", c.seed, "seed for initialisation, shuffling and augmentation")
      ->capture_default_str();
  app.add_option("--data", c.data,
                 "CIFAR-10 folder: the official binary batches or {train,test}/<class>/*.png "
                 "(default: $CIFAR10_DIR, then data/cifar10, then ../shared/cifar10)");
  app.add_option("--log", c.log, "write a JSON-lines log (header, one line per epoch, summary)");
  app.add_option("--csv", c.csv, "write the epoch rows as CSV");
  app.add_option("--save", c.save,
                 "write a checkpoint here after every epoch (model, optimizer state, loss scale, "
                 "position in the run: what --resume continues from); the previous one stays "
                 "until the new one is complete");
  app.add_option("--save-every", c.save_every,
                 "also save every N steps inside epochs (0 = after every epoch only)")
      ->capture_default_str();
  app.add_option("--keep", c.keep,
                 "checkpoints kept: the newest at --save, the older ones as --save.1, .2, ...")
      ->capture_default_str();
  app.add_option("--resume", c.resume,
                 "continue the run that saved this checkpoint exactly where it stopped (same "
                 "flags and data; --epochs may grow under a constant learning rate); the logs "
                 "are appended to");
  app.add_option("--load", c.load,
                 "start from this checkpoint (saved by --save, same --model); with --epochs 0, "
                 "only evaluate it");
  app.add_option("--limit-train", c.limit_train,
                 "use only N training images (a deterministic subset over all classes)");
  app.add_option("--limit-test", c.limit_test, "use only N test images");
  app.add_option("--warmup-steps", c.warmup_steps, "steps of epoch 1 left out of images/sec")
      ->capture_default_str();
  app.add_option("--eval-batch", c.eval_batch, "batch size for evaluation")->capture_default_str();
  app.add_flag("--sync-bn", c.sync_bn,
               "several ranks (mpirun -np N train ...): BatchNorm statistics over the whole "
               "global batch instead of each rank's slice");
  app.add_option("--bucket-kb", c.bucket_kb,
                 "several ranks: the gradients are averaged in buckets of about this many KiB, "
                 "each started as soon as the backward has produced it (0: one average of all "
                 "gradients after the backward)")
      ->capture_default_str();
  bool no_progress = false;
  app.add_flag("--no-progress", no_progress, "no progress bar, even on a terminal");
  KernelFlags kernel_flags;
  add_kernel_flags(app, kernel_flags);
  add_profile_flags(app, c.profile);
  app.add_option("--compare", compare,
                 "print these JSON-lines logs side by side as a markdown table and exit")
      ->expected(1, -1);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << " (see train --help)\n";
    return 2;
  }
  c.progress = !no_progress;
  c.kernels = to_kernel_options(kernel_flags);
  c.command = "train";
  for (const std::string& a : args) c.command += " " + a;
  try {
    if (!compare.empty()) {
      out << compare_runs(compare);
      return 0;
    }
    // SIGINT / SIGTERM: finish the step, save, log and exit 128 + signal; a second one ends now.
    StopSignals signals;
    return train_on_every_rank(c, out, err);  // one process, or each of several MPI ranks
  } catch (const TrainingInterrupted& e) {
    return 128 + e.signal;
  } catch (const data::DataError& e) {
    err << "error: " << e.what() << "\n";
  } catch (const Error& e) {
    err << "error: " << e.what() << "\n";
  }
  return 1;
}

int train_main(int argc, char** argv) {
  return train_main(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}

}  // namespace dsc
