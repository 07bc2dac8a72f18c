// `train --save / --load` through train_main: a run saves a checkpoint after every epoch and
// `--load --epochs 0` on it reproduces that run's final test and train accuracy exactly on a few
// hundred real CIFAR-10 images; training goes on from a checkpoint; a checkpoint of the other
// model, --save into a missing folder and --epochs 0 without --load are one-line errors before
// any training.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "data/cifar10.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "train/run_log.h"
#include "train/trainer.h"
#include "train_run.h"

namespace fs = std::filesystem;
using dsc_test::Run;
using dsc_test::temp_dir;
using dsc_test::train;

namespace {

bool one_line_error(const Run& r) {
  return r.rc == 1 && r.out.empty() && r.err.rfind("error: ", 0) == 0 &&
         std::count(r.err.begin(), r.err.end(), '\n') == 1 && r.err.back() == '\n';
}

}  // namespace

TEST_CASE("train --help lists --save and --load") {
  Run r = train({"--help"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("--save") != std::string::npos);
  CHECK(r.out.find("--load") != std::string::npos);
}

TEST_CASE("train refuses bad checkpoint flags in one line before reading any data") {
  const fs::path dir = temp_dir("train_ckpt_flags");
  // Before any data: --data points nowhere, so reaching the data would give another error.
  const std::vector<std::string> no_data = {"--data", (dir / "no-data").string()};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), no_data.begin(), no_data.end());
    return train(args);
  };

  const std::string nowhere = (dir / "missing" / "model.ckpt").string();
  Run save = with({"--save", nowhere});
  CHECK_MESSAGE(one_line_error(save), save.err);
  CHECK_MESSAGE(save.err.find("--save: cannot write checkpoint '" + nowhere +
                              "': No such file or directory") != std::string::npos,
                save.err);

  const std::string normal = (dir / "normal.ckpt").string();
  dsc::save_checkpoint(*dsc::make_seed_cnn(dsc::ModelKind::Normal, 1), normal,
                       {{"model", "normal"}, {"epoch", 1}});
  Run wrong = with({"--model", "depsep", "--load", normal});
  CHECK_MESSAGE(one_line_error(wrong), wrong.err);
  CHECK_MESSAGE(
      wrong.err.find("--load: checkpoint '" + normal +
                     "' holds a 'normal' model, but "
                     "--model is 'depsep' (run with --model normal)") != std::string::npos,
      wrong.err);

  Run absent = with({"--model", "normal", "--load", (dir / "absent.ckpt").string()});
  CHECK_MESSAGE(one_line_error(absent), absent.err);
  CHECK(absent.err.find("cannot read checkpoint") != std::string::npos);

  Run eval_only = with({"--epochs", "0"});
  CHECK_MESSAGE(one_line_error(eval_only), eval_only.err);
  CHECK(eval_only.err.find("--epochs must be at least 1, got 0 (--epochs 0 evaluates a "
                           "checkpoint: add --load PATH)") != std::string::npos);
  CHECK(with({"--epochs", "-1", "--load", normal}).err.find("--epochs must be at least 1") !=
        std::string::npos);

  // The model name matches: the flags pass and the run gets as far as the (missing) data.
  Run right = with({"--model", "normal", "--load", normal, "--save", normal});
  CHECK(right.rc == 1);
  CHECK_MESSAGE(right.err.find("no-data") != std::string::npos, right.err);
  CHECK(dsc::read_checkpoint_meta(normal)["epoch"] == 1);  // the probe did not touch it
  fs::remove_all(dir);
}

TEST_CASE("train --save, then --load --epochs 0 on a few hundred real images: same accuracy") {
  const std::string real = DSC_SOURCE_DIR "/../shared/cifar10";
  if (!fs::exists(real + "/train")) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("train_ckpt_real");
  // 400 training and 200 test images of the real set, packed once so each run reads them fast.
  const std::string data = (dir / "cifar-small").string();
  dsc::data::pack_cifar10(
      dsc::data::subset(dsc::data::load_cifar10(real, dsc::data::Split::kTrain), 400),
      dsc::data::subset(dsc::data::load_cifar10(real, dsc::data::Split::kTest), 200), data);
  const std::vector<std::string> common = {"--model", "depsep", "--data",       data,
                                           "--batch", "16",     "--eval-batch", "200"};
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return train(args);
  };
  const std::string ckpt = (dir / "depsep.ckpt").string();
  const std::string log1 = (dir / "first.jsonl").string(), log2 = (dir / "eval.jsonl").string(),
                    log3 = (dir / "more.jsonl").string();

  Run first = run({"--epochs", "3", "--seed", "3", "--save", ckpt, "--log", log1});
  REQUIRE_MESSAGE(first.rc == 0, first.err);
  CHECK(first.out.find("saved      " + ckpt + " (epoch 1)") != std::string::npos);
  CHECK(first.out.find("saved      " + ckpt + " (epoch 3)") != std::string::npos);
  CHECK_FALSE(fs::exists(ckpt + ".tmp"));
  const std::vector<nlohmann::json> lines1 = dsc::read_run_log(log1);
  const nlohmann::json s1 = lines1.back();
  // The last epoch line (a `checkpoint` record follows each epoch that was saved).
  const nlohmann::json last_epoch = *std::find_if(
      lines1.rbegin(), lines1.rend(), [](const nlohmann::json& r) { return r["type"] == "epoch"; });
  CHECK(lines1[lines1.size() - 2]["type"] == "checkpoint");
  CHECK(lines1[0]["save"] == ckpt);
  CHECK(lines1[0]["load"].is_null());

  const nlohmann::json meta = dsc::read_checkpoint_meta(ckpt);
  CHECK(meta["model"] == "depsep");
  CHECK(meta["epoch"] == 3);
  CHECK(meta["seed"] == 3);
  CHECK(meta["test_acc"] == last_epoch["test_acc"]);
  CHECK(meta["train_loss"] == last_epoch["train_loss"]);
  CHECK(meta["git_commit"] == lines1[0]["git_commit"]);
  CHECK(meta["command"].get<std::string>().find("--save " + ckpt) != std::string::npos);
  CHECK(meta["date"].is_string());

  // Evaluation only, from another seed: the checkpoint, not the seed, decides the accuracy.
  Run eval = run({"--epochs", "0", "--seed", "9", "--load", ckpt, "--log", log2});
  REQUIRE_MESSAGE(eval.rc == 0, eval.err);
  CHECK(eval.out.find("loaded     " + ckpt + " (depsep, trained 3 epochs): evaluation only") !=
        std::string::npos);
  CHECK(eval.out.find("epoch 1/") == std::string::npos);  // nothing trained
  const std::vector<nlohmann::json> lines2 = dsc::read_run_log(log2);
  REQUIRE(lines2.size() == 2);  // header, summary
  CHECK(lines2[0]["load"] == ckpt);
  CHECK(lines2[0]["load_meta"]["epoch"] == 3);
  const nlohmann::json s2 = lines2[1];
  CHECK(s1["test_acc"].get<double>() > 0.15);  // learnt something: the check below means a lot
  CHECK(s2["test_acc"] == s1["test_acc"]);
  CHECK(s2["test_loss"] == s1["test_loss"]);
  CHECK(s2["train_acc"] == s1["train_acc"]);
  std::ostringstream acc;
  acc << std::fixed;
  acc.precision(1);
  acc << 100 * s1["train_acc"].get<double>() << "% | " << 100 * s1["test_acc"].get<double>()
      << "% |";
  CHECK_MESSAGE(eval.out.find(acc.str()) != std::string::npos, eval.out);

  // Training goes on from the checkpoint: its first epoch starts where the first run ended.
  const std::string ckpt2 = (dir / "depsep-more.ckpt").string();
  Run more = run({"--epochs", "1", "--seed", "3", "--load", ckpt, "--save", ckpt2, "--log", log3});
  REQUIRE_MESSAGE(more.rc == 0, more.err);
  const std::vector<nlohmann::json> lines3 = dsc::read_run_log(log3);
  CHECK(lines3[1]["train_loss"].get<double>() < lines1[1]["train_loss"].get<double>() - 0.1);
  const nlohmann::json meta2 = dsc::read_checkpoint_meta(ckpt2);
  CHECK(meta2["epoch"] == 4);
  CHECK(meta2["loaded_from"] == ckpt);
  CHECK(more.out.find("saved      " + ckpt2 + " (epoch 4)") != std::string::npos);

  // The wrong model's checkpoint without a model name in its meta: refused by its tensors.
  const std::string anonymous = (dir / "anonymous.ckpt").string();
  dsc::save_checkpoint(*dsc::make_seed_cnn(dsc::ModelKind::Normal, 1), anonymous, {});
  Run wrong = run({"--epochs", "0", "--load", anonymous});
  CHECK(wrong.rc == 1);
  CHECK_MESSAGE(
      wrong.err.find("checkpoint '" + anonymous + "' does not fit this model") != std::string::npos,
      wrong.err);
  CHECK(std::count(wrong.err.begin(), wrong.err.end(), '\n') == 1);
  fs::remove_all(dir);
}
