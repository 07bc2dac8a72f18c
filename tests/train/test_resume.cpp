// Training you can trust, end to end on a few hundred real CIFAR-10 images: a run resumed from any
// checkpoint it saved (mid-epoch included) ends with bit-identical weights, optimizer state and
// epoch lines, in fp32 and mixed precision on the CPU; --resume refuses another run's checkpoint
// naming what differs; a real `train` process stops cleanly on SIGINT / SIGTERM, dies at once on a
// second signal, and survives SIGKILL at random moments (its latest checkpoint always resumes);
// write failures are clear errors that leave the previous checkpoint intact; a diverging run
// stops with the step and the first non-finite parameter gradient (fp32) or a collapsed loss
// scale (mixed precision).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "data/cifar10.h"
#include "layers/checkpoint.h"
#include "layers/model_registry.h"
#include "train/run_log.h"
#include "train/trainer.h"
#include "train_run.h"

namespace fs = std::filesystem;
using dsc_test::Run;
using dsc_test::temp_dir;
using dsc_test::train;

namespace {

// 384 training images (6 steps of 64 per epoch) and 128 test images of the real set, packed once
// per process so every run reads them fast; "" without the data.
std::string small_data() {
  static const std::string path = [] {
    const std::string real = DSC_SOURCE_DIR "/../shared/cifar10";
    if (!fs::exists(real + "/train")) return std::string();
    const std::string p = (temp_dir("resume_data") / "cifar-small").string();
    dsc::data::pack_cifar10(
        dsc::data::subset(dsc::data::load_cifar10(real, dsc::data::Split::kTrain), 384),
        dsc::data::subset(dsc::data::load_cifar10(real, dsc::data::Split::kTest), 128), p);
    return p;
  }();
  return path;
}

std::vector<std::string> common_flags(const std::string& data) {
  return {"--model", "depsep", "--data", data, "--batch", "64", "--eval-batch", "128",
          "--device", "cpu", "--threads", "2", "--seed", "5"};
}

// `a` with the flags of `b` (flag value pairs, or a lone flag): a flag already in `a` gets the new
// value (train takes each flag once), others are appended.
std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  for (size_t i = 0; i < b.size(); ++i) {
    const bool has_value = i + 1 < b.size() && b[i + 1].rfind("--", 0) != 0;
    auto it = std::find(a.begin(), a.end(), b[i]);
    if (it != a.end() && has_value && it + 1 != a.end()) {
      *(it + 1) = b[i + 1];
    } else {
      a.push_back(b[i]);
      if (has_value) a.push_back(b[i + 1]);
    }
    if (has_value) ++i;
  }
  return a;
}

// A checkpoint's tensors: the header's tensor table (names, kinds, shapes, CRCs, offsets) and the
// raw data section; everything but the meta, which holds dates and command lines.
struct Tensors {
  nlohmann::json table;
  std::string data;
};

Tensors tensors_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 20);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data() + 12, 8);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(20, header));
  return {h["tensors"], bytes.substr(20 + header)};
}

// The losses and accuracies of the epoch lines of a log, by epoch.
std::map<int, std::vector<double>> epoch_lines(const std::string& log) {
  std::map<int, std::vector<double>> lines;
  for (const nlohmann::json& r : dsc::read_run_log(log)) {
    if (r.value("type", "") != "epoch") continue;
    lines[r["epoch"].get<int>()] = {r["train_loss"].get<double>(), r["train_acc"].get<double>(),
                                    r["test_loss"].get<double>(), r["test_acc"].get<double>()};
  }
  return lines;
}

nlohmann::json last_record(const std::string& log) { return dsc::read_run_log(log).back(); }

// A real `train` process (the program of this build) with its output in files.
struct Process {
  pid_t pid = -1;
  int status = 0;
  // Starts train with `args`; before exec, the child limits the size of the files it writes to
  // `fsize_limit` bytes (0: no limit), ignoring SIGXFSZ so an oversized write fails with EFBIG.
  Process(const std::vector<std::string>& args, const std::string& out_file,
          rlim_t fsize_limit = 0) {
    const std::string exe = DSC_BINARY_DIR "/bin/train";
    REQUIRE_MESSAGE(fs::exists(exe), exe);
    std::vector<std::string> all = {exe};
    all.insert(all.end(), args.begin(), args.end());
    all.push_back("--no-progress");
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::FILE* f = std::freopen(out_file.c_str(), "w", stdout);
      if (!f || ::dup2(::fileno(stdout), 2) < 0) ::_exit(120);
      if (fsize_limit) {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit lim{fsize_limit, fsize_limit};
        ::setrlimit(RLIMIT_FSIZE, &lim);
      }
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(121);
    }
  }
  void signal(int sig) const { ::kill(pid, sig); }
  int wait() {
    if (!exited) REQUIRE(::waitpid(pid, &status, 0) == pid);
    exited = true;
    return status;
  }
  bool running() {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    return !exited;
  }
  bool exited = false;
};

// Waits (up to two minutes) until `log` holds `count` records of `type`; false if the process
// ends first.
bool wait_for_record(const std::string& log, const std::string& type, int count, Process& p) {
  for (int i = 0; i < 12000 && p.running(); ++i) {
    std::ifstream in(log);
    int seen = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find("\"type\":\"" + type + "\"") != std::string::npos && ++seen >= count)
        return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("a run resumed from any checkpoint it saved ends bit-identical to the uninterrupted run") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  for (const std::string precision : {"fp32", "amp"}) {
    CAPTURE(precision);
    const fs::path dir = temp_dir("resume_exact_" + precision);
    const std::vector<std::string> flags =
        cat(common_flags(data), {"--epochs", "2", "--precision", precision});
    // The reference: 2 epochs of 6 steps, saving every 2 steps (12 checkpoints: steps 2 and 4 of
    // each epoch and both epoch ends), all kept. It also shows that saving changes nothing.
    const std::string ref = (dir / "ref.ckpt").string(), ref_log = (dir / "ref.jsonl").string();
    Run r = train(cat(flags, {"--save", ref, "--save-every", "2", "--keep", "10", "--log", ref_log}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const std::string plain = (dir / "plain.ckpt").string();
    r = train(cat(flags, {"--save", plain}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const Tensors final_ref = tensors_of(ref);
    CHECK(tensors_of(plain).data == final_ref.data);
    const auto ref_lines = epoch_lines(ref_log);
    REQUIRE(ref_lines.size() == 2);

    // ref.N is the Nth newest: .1 step 4 of epoch 2, .2 step 2 of epoch 2, .3 the end of epoch 1,
    // .4 step 4 of epoch 1, .5 step 2 of epoch 1.
    for (const int older : {1, 3, 5}) {
      CAPTURE(older);
      const std::string from = (dir / ("from" + std::to_string(older) + ".ckpt")).string();
      fs::copy_file(ref + "." + std::to_string(older), from);
      const nlohmann::json at = dsc::read_checkpoint_meta(from)["training"];
      const std::string log = (dir / ("from" + std::to_string(older) + ".jsonl")).string();
      r = train(cat(flags, {"--resume", from, "--save", from, "--log", log}));
      REQUIRE_MESSAGE(r.rc == 0, r.err);
      CHECK(r.out.find("resumed    " + from) != std::string::npos);
      const Tensors resumed = tensors_of(from);
      CHECK(resumed.table == final_ref.table);
      CHECK(resumed.data == final_ref.data);  // weights, BatchNorm, Adam, loss scaler: bit for bit
      // Every epoch line the resumed run wrote equals the uninterrupted run's, mid-epoch ones too.
      const auto lines = epoch_lines(log);
      CHECK(int(lines.size()) == 3 - at["epoch"].get<int>());
      for (const auto& [epoch, values] : lines) CHECK(values == ref_lines.at(epoch));
    }
  }
}

TEST_CASE("--resume refuses another run's checkpoint in one line, naming what differs, writing nothing") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("resume_refuse");
  const std::string ckpt = (dir / "run.ckpt").string();
  const std::vector<std::string> flags = cat(common_flags(data), {"--epochs", "1"});
  Run r = train(cat(flags, {"--save", ckpt}));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const std::string log = (dir / "keep.jsonl").string();
  { std::ofstream(log) << "{\"type\":\"header\"}\n"; }
  const std::string before = read_file(log);
  auto refused = [&](std::vector<std::string> args, const std::string& expected) {
    CAPTURE(expected);
    const Run x = train(cat(args, {"--log", log}));
    CHECK(x.rc == 1);
    CHECK(x.out.empty());
    CHECK_MESSAGE(x.err.find(expected) != std::string::npos, x.err);
    CHECK(std::count(x.err.begin(), x.err.end(), '\n') == 1);
    CHECK(read_file(log) == before);
  };
  // Another batch size, optimizer setting or seed: the run is not the one saved.
  refused(cat(flags, {"--epochs", "2", "--resume", ckpt, "--batch", "32"}),
          "batch 64 (this run: 32)");
  refused(cat(flags, {"--epochs", "2", "--resume", ckpt, "--lr", "0.01"}), "optimizer");
  refused(cat(flags, {"--epochs", "2", "--resume", ckpt, "--seed", "6"}), "seed 5 (this run: 6)");
  refused(cat(flags, {"--epochs", "2", "--resume", ckpt, "--limit-train", "320"}),
          "train_images 384 (this run: 320)");
  // Its run is complete: nothing to train, the summary evaluates what it left (a resume loop
  // may run once too often).
  const std::string done_log = (dir / "done.jsonl").string();
  r = train(cat(flags, {"--resume", ckpt, "--log", done_log}));
  CHECK_MESSAGE(r.rc == 0, r.err);
  CHECK(r.out.find("nothing is left to train") != std::string::npos);
  CHECK(epoch_lines(done_log).empty());
  CHECK(last_record(done_log)["type"] == "summary");
  // A model-only checkpoint: --load is the way to start from it.
  const std::string model_only = (dir / "model.ckpt").string();
  {
    auto m = dsc::make_model("depsep", dsc::ModelSpec{});
    dsc::save_checkpoint(*m, model_only, {{"model", "depsep"}});
  }
  refused(cat(flags, {"--epochs", "2", "--resume", model_only}), "--load " + model_only);
  refused(cat(flags, {"--epochs", "2", "--resume", ckpt, "--load", ckpt}), "exclude each other");
  refused(cat(flags, {"--save-every", "3"}), "--save-every needs --save");
  refused(cat(flags, {"--keep", "0", "--save", ckpt}), "--keep must be at least 1");
  refused(cat(flags, {"--epochs", "2", "--resume", (dir / "missing.ckpt").string()}),
          "missing.ckpt");
  // Resuming a constant-rate run with more epochs is fine, and appends to its log.
  const std::string more = (dir / "more.jsonl").string();
  r = train(cat(flags, {"--epochs", "2", "--resume", ckpt, "--log", more}));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(epoch_lines(more).count(2) == 1);
  CHECK(epoch_lines(more).count(1) == 0);
}

TEST_CASE("SIGINT / SIGTERM stop a real train process after a step, save, log it and exit 128+sig") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("resume_signal");
  const std::vector<std::string> flags = cat(common_flags(data), {"--epochs", "3"});
  const std::string ref = (dir / "ref.ckpt").string();
  Run r = train(cat(flags, {"--save", ref}));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  for (const int sig : {SIGINT, SIGTERM}) {
    CAPTURE(sig);
    const std::string ckpt = (dir / ("run" + std::to_string(sig) + ".ckpt")).string();
    const std::string log = (dir / ("run" + std::to_string(sig) + ".jsonl")).string();
    const std::string out = (dir / ("run" + std::to_string(sig) + ".out")).string();
    Process p(cat(flags, {"--save", ckpt, "--save-every", "4", "--log", log}), out);
    REQUIRE(wait_for_record(log, "checkpoint", 1, p));  // training is under way
    p.signal(sig);
    const int status = p.wait();
    REQUIRE_MESSAGE(WIFEXITED(status), read_file(out));
    CHECK(WEXITSTATUS(status) == 128 + sig);
    const nlohmann::json last = last_record(log);
    CHECK(last["type"] == "interrupted");
    CHECK(last["signal"] == (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    CHECK(read_file(out).find("continue with --resume " + ckpt) != std::string::npos);
    // What it left resumes to the same end as the uninterrupted run.
    r = train(cat(flags, {"--resume", ckpt, "--save", ckpt, "--log", log}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(tensors_of(ckpt).data == tensors_of(ref).data);
  }
  // A second signal ends the process at once, by the signal itself. Signals sent while the
  // process waits for a CPU merge into one, so SIGINT is sent every 2 ms until it ends: the first
  // one it handles asks for a stop, the next one (long before a step and a save are done) kills.
  const std::string log = (dir / "twice.jsonl").string();
  Process p(cat(flags, {"--save", (dir / "twice.ckpt").string(), "--save-every", "4", "--log", log}),
            (dir / "twice.out").string());
  REQUIRE(wait_for_record(log, "checkpoint", 1, p));
  while (p.running()) {
    p.signal(SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const int status = p.wait();
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGINT);
}

TEST_CASE("train killed with SIGKILL at random moments: the latest checkpoint always resumes") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("resume_kill");
  const std::vector<std::string> flags = cat(common_flags(data), {"--epochs", "3"});
  const std::string ref = (dir / "ref.ckpt").string();
  Run r = train(cat(flags, {"--save", ref}));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  // A checkpoint after every step: the kills land inside saves as often as between them.
  const std::string ckpt = (dir / "run.ckpt").string();
  const std::vector<std::string> run_flags =
      cat(flags, {"--save", ckpt, "--save-every", "1", "--keep", "2"});
  std::mt19937 rng(1234);
  int kills = 0;
  bool finished = false;
  for (int i = 0; i < 12 && !finished; ++i) {
    std::vector<std::string> args = run_flags;
    if (fs::exists(ckpt)) {
      // The latest checkpoint on disk is whole: it loads, model and state.
      const nlohmann::json meta = dsc::read_checkpoint_meta(ckpt);
      REQUIRE(meta.contains("training"));
      auto m = dsc::make_model("depsep", dsc::ModelSpec{.seed = 5});
      dsc::load_checkpoint(*m, ckpt);
      args = cat(args, {"--resume", ckpt});
    }
    const std::string log = (dir / ("run" + std::to_string(i) + ".jsonl")).string();
    Process p(cat(args, {"--log", log}), (dir / ("run" + std::to_string(i) + ".out")).string());
    // Killed at a random moment after 0 to 2 more checkpoints (whatever the machine's speed),
    // inside a step or a save.
    wait_for_record(log, i % 3 == 0 ? "header" : "checkpoint",
                    std::uniform_int_distribution<int>(1, 2)(rng), p);
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(0, 200000)(rng)));
    if (p.running()) p.signal(SIGKILL);
    const int status = p.wait();
    if (WIFSIGNALED(status)) {
      ++kills;
    } else {
      REQUIRE_MESSAGE(WIFEXITED(status), i);
      REQUIRE_MESSAGE(WEXITSTATUS(status) == 0, read_file((dir / ("run" + std::to_string(i) + ".out")).string()));
      finished = true;
    }
  }
  CHECK(kills >= 3);
  if (!finished) {
    r = train(cat(run_flags, {"--resume", ckpt}));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
  }
  // However often it was killed, the run ends where the uninterrupted one does.
  CHECK(tensors_of(ckpt).data == tensors_of(ref).data);
}

TEST_CASE("a failed checkpoint or log write is a clear error and leaves the previous checkpoint") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("resume_write");
  const std::vector<std::string> flags = cat(common_flags(data), {"--epochs", "2"});
  const std::string ckpt = (dir / "run.ckpt").string();
  Run r = train(cat(flags, {"--epochs", "1", "--save", ckpt}));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const std::string before = read_file(ckpt);
  REQUIRE(before.size() > 400000);
  // Files may not grow past 64 KiB: the log fits, the next checkpoint does not.
  const std::string out = (dir / "limited.out").string();
  Process p(cat(flags, {"--resume", ckpt, "--save", ckpt, "--save-every", "1", "--log",
                        (dir / "limited.jsonl").string()}),
            out, 64 << 10);
  const int status = p.wait();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  const std::string said = read_file(out);
  CHECK_MESSAGE(said.find("error: ") != std::string::npos, said);
  CHECK_MESSAGE(said.find(ckpt) != std::string::npos, said);
  CHECK(read_file(ckpt) == before);  // the previous checkpoint, untouched
  CHECK_FALSE(fs::exists(ckpt + ".tmp"));
  auto m = dsc::make_model("depsep", dsc::ModelSpec{.seed = 5});
  CHECK(dsc::load_checkpoint(*m, ckpt)["epoch"] == 1);
  // A log on a full device.
  r = train(cat(flags, {"--log", "/dev/full"}));
  CHECK(r.rc == 1);
  CHECK_MESSAGE(r.err.find("'/dev/full'") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("No space left") != std::string::npos, r.err);
}

TEST_CASE("a diverging run stops: fp32 names the step and the first non-finite gradient, amp a collapsed loss scale") {
  const std::string data = small_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("resume_diverge");
  // A learning rate of 1e30 makes the weights huge after the first update: the forward pass
  // overflows from then on.
  const std::string log32 = (dir / "fp32.jsonl").string();
  const std::string ckpt = (dir / "fp32.ckpt").string();
  Run r = train(cat(common_flags(data), {"--epochs", "3", "--lr", "1e30", "--precision", "fp32",
                                         "--log", log32, "--save", ckpt, "--save-every", "1"}));
  CHECK(r.rc == 1);
  CHECK_MESSAGE(r.err.find("a gradient became NaN or inf at step ") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("the first parameter with a non-finite gradient is '") !=
                    std::string::npos,
                r.err);
  nlohmann::json last = last_record(log32);
  CHECK(last["type"] == "stopped");
  CHECK(last["reason"] == "non-finite gradient");
  CHECK(last["epoch"] == 1);
  // The last checkpoint is from before the non-finite step: it resumes into the same stop.
  const nlohmann::json saved = dsc::read_checkpoint_meta(ckpt)["training"];
  CHECK(saved["batch"].get<int>() == last["batch"].get<int>() - 1);
  // It was the first non-finite step: the steps before it had finite gradients.
  CHECK(last["batch"].get<int>() >= 2);

  const std::string log16 = (dir / "amp.jsonl").string();
  r = train(cat(common_flags(data), {"--epochs", "10", "--lr", "1e30", "--precision", "amp",
                                     "--log", log16}));
  CHECK(r.rc == 1);
  CHECK_MESSAGE(r.err.find("loss scale collapsed") != std::string::npos, r.err);
  last = last_record(log16);
  CHECK(last["type"] == "stopped");
  CHECK(last["loss_scale"].get<double>() < 1.0);
  CHECK(last["epoch"].get<int>() < 10);
}
