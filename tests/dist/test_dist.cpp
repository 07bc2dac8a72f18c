// Data-parallel training across MPI ranks (train/data_parallel.h, train/distributed.h), with real
// `mpirun -np 2` runs of this build's train on real CIFAR-10 images: --sync-bn against one
// process, replicas bit-identical without it, a mixed-precision overflow on one rank skipped by
// every rank, an exact resume on two ranks, gradient buckets averaged during the backward (the
// same weights as one average after it; in-process, which buckets start when), a rank killed or
// failing mid-run, and the one-line errors before training. Skipped
// (reported as such) in a build without MPI or without mpirun on the PATH; the refusal of a
// several-rank launch by a build without MPI is tested in that build instead.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "layers/checkpoint.h"
#include "layers/model_registry.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "train/data_parallel.h"
#include "train/distributed.h"
#include "train/run_log.h"
#include "train/step.h"

namespace fs = std::filesystem;

namespace {

const std::string kTrain = DSC_BINARY_DIR "/bin/train";
const std::string kSource = DSC_SOURCE_DIR "/../shared/cifar10";

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }
bool mpi_usable() { return dsc::dist::built_with_mpi() && have_mpirun(); }
bool have_data() { return fs::exists(kSource + "/train"); }

// The first 2,560 training and 100 test images of the real CIFAR-10 in the binary layout, packed
// once for every test of this build (decoding all 60,000 PNGs costs each rank seconds).
const std::string& data() {
  static const std::string dir = [] {
    const fs::path final_dir = DSC_BINARY_DIR "/dist-test-data";
    if (!fs::exists(final_dir / "test_batch.bin")) {
      const fs::path tmp = final_dir.string() + ".tmp" + std::to_string(getpid());
      const std::string cmd = DSC_BINARY_DIR "/bin/pack " + kSource + " " + tmp.string() +
                              " --limit-train 2560 --limit-test 100 >/dev/null 2>&1";
      REQUIRE(std::system(cmd.c_str()) == 0);
      std::error_code ec;
      fs::rename(tmp, final_dir, ec);  // another test process may have been first
      fs::remove_all(tmp, ec);
    }
    return final_dir.string();
  }();
  return dir;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("dsc_dist_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Result {
  int rc = -1;
  double seconds = 0;
  std::string output;
};

// Runs `command` through the shell with stdout and stderr in one file, under a time limit.
Result run(const std::string& command, const fs::path& out_file, int limit_s = 170) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string full = "timeout -k 5 " + std::to_string(limit_s) + " " + command + " >" +
                           out_file.string() + " 2>&1";
  const int status = std::system(full.c_str());
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(out_file);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

// `mpirun -np ranks` of train with `args`; `env` as "NAME=VALUE" exported to every rank.
std::string mpirun(int ranks, const std::string& args, const std::string& env = "") {
  std::string cmd =
      "mpirun --allow-run-as-root --oversubscribe --bind-to none -np " + std::to_string(ranks);
  if (!env.empty()) cmd += " -x " + env;
  return cmd + " " + kTrain + " --data " + data() + " --threads 1 --no-progress " + args;
}

std::string train_cmd(const std::string& args, int threads = 1) {
  return kTrain + " --data " + data() + " --threads " + std::to_string(threads) +
         " --no-progress " + args;
}

std::vector<nlohmann::json> records(const fs::path& log, const std::string& type) {
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& r : dsc::read_run_log(log.string()))
    if (r.value("type", "") == type) out.push_back(r);
  return out;
}

// Largest |a - b| over every parameter and buffer of two checkpoints of `model`, and the largest
// |a| (for a relative figure).
std::pair<double, double> max_difference(const std::string& model, const fs::path& a,
                                         const fs::path& b) {
  auto ma = dsc::make_model(model, dsc::ModelSpec{});
  auto mb = dsc::make_model(model, dsc::ModelSpec{});
  dsc::load_checkpoint(*ma, a.string());
  dsc::load_checkpoint(*mb, b.string());
  double diff = 0, scale = 0;
  auto ta = ma->parameters(), tb = mb->parameters();
  for (auto& t : ma->buffers()) ta.push_back(t);
  for (auto& t : mb->buffers()) tb.push_back(t);
  REQUIRE(ta.size() == tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    const std::vector<double> va = ta[i].tensor.to_vector(), vb = tb[i].tensor.to_vector();
    for (size_t k = 0; k < va.size(); ++k) {
      diff = std::max(diff, std::abs(va[k] - vb[k]));
      scale = std::max(scale, std::abs(va[k]));
    }
  }
  return {diff, scale};
}

const bool kSkip = !mpi_usable() || !have_data();

}  // namespace

// The tolerance is fp32 summation order, measured: the gradient of the global batch is here the
// average of two 64-image sums instead of one 128-image sum, and the BatchNorm statistics add two
// double partial sums. After one step that is rounding (1e-6 of the largest weight; statistics of
// each rank's 64 images instead, as without --sync-bn, miss by far more). After 20 steps this
// network amplifies rounding (the biases before ReLU, max-pool and BatchNorm are ill-conditioned:
// one process with 2 threads instead of 1 differs from itself by about 15% of such a bias), so
// the 20-step bound is that self-difference of one process under another summation order, x 3.
// SGD, because Adam's first updates are lr x sign(gradient): a gradient that is rounding noise
// (those biases) flips sign with the summation order and moves by 2 lr in one step.
TEST_CASE("mpirun -np 2 --sync-bn trains the same weights as one process, 20 steps of batch 128" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("syncbn");
  const std::string common =
      "--model depsep --batch 128 --limit-train 2560 --limit-test 100 --epochs 1 "
      "--eval-batch 500 --optimizer sgd --lr 0.01 --save-every 1 --keep 20 --save ";
  // Two single-process runs side by side: 1 thread and 2 threads (another summation order).
  const std::string one = train_cmd(common + (d / "one.ckpt").string());
  const std::string other = train_cmd(common + (d / "other.ckpt").string(), 2);
  const Result ones = run("sh -c '" + one + " & " + other + " && wait $!'", d / "one.txt");
  REQUIRE_MESSAGE(ones.rc == 0, ones.output);
  REQUIRE(fs::exists(d / "one.ckpt.19"));
  REQUIRE(fs::exists(d / "other.ckpt"));
  const Result two = run(mpirun(2, common + (d / "two.ckpt").string() + " --sync-bn --log " +
                                       (d / "two.jsonl").string()),
                         d / "two.txt");
  REQUIRE_MESSAGE(two.rc == 0, two.output);
  const nlohmann::json header = records(d / "two.jsonl", "header").at(0);
  CHECK(header["world_size"] == 2);
  CHECK(header["engine"] == "MPI");
  CHECK(header["rank_devices"].size() == 2);
  CHECK(header["sync_bn"] == true);
  // After step 1 (the oldest of the 20 checkpoints kept).
  const auto [diff1, scale1] = max_difference("depsep", d / "one.ckpt.19", d / "two.ckpt.19");
  MESSAGE("step 1: largest difference " << diff1 << " (largest value " << scale1 << ")");
  CHECK(diff1 <= 1e-6 * scale1);
  // After step 20.
  const double self = max_difference("depsep", d / "one.ckpt", d / "other.ckpt").first;
  const double diff20 = max_difference("depsep", d / "one.ckpt", d / "two.ckpt").first;
  MESSAGE("step 20: 2 ranks vs 1 process " << diff20 << ", 1 process vs itself with 2 threads "
                                           << self);
  CHECK(diff20 <= 3 * self);
  fs::remove_all(d);
}

TEST_CASE("mpirun -np 2: replicas stay bit-identical over two epochs and the loss falls" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("replicas");
  const Result r = run(mpirun(2,
                              "--model depsep --batch 128 --limit-train 1024 --limit-test 100 "
                              "--epochs 2 --log " +
                                  (d / "run.jsonl").string()),
                       d / "out.txt");
  REQUIRE_MESSAGE(r.rc == 0, r.output);
  const auto epochs = records(d / "run.jsonl", "epoch");
  REQUIRE(epochs.size() == 2);
  const auto replicas = records(d / "run.jsonl", "replicas");
  REQUIRE(replicas.size() == 2);
  for (const nlohmann::json& e : replicas) {
    REQUIRE(e["crc32"].size() == 2);
    CHECK(e["crc32"][0] == e["crc32"][1]);
  }
  CHECK(epochs[1]["train_loss"].get<double>() < epochs[0]["train_loss"].get<double>());
  // Only rank 0 prints: one header, one line per epoch.
  size_t headers = 0;
  for (size_t p = r.output.find("model      "); p != std::string::npos;
       p = r.output.find("model      ", p + 1))
    ++headers;
  CHECK(headers == 1);
  fs::remove_all(d);
}

TEST_CASE("mpirun -np 2 --precision amp: an overflow on rank 1 makes every rank skip that step" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("amp");
  const std::string common =
      "--model depsep --batch 128 --limit-train 512 --limit-test 100 --epochs 1 "
      "--precision amp --log ";
  const Result plain = run(mpirun(2, common + (d / "plain.jsonl").string()), d / "plain.txt");
  REQUIRE_MESSAGE(plain.rc == 0, plain.output);
  const nlohmann::json a = records(d / "plain.jsonl", "epoch").at(0);
  // The overflow reaches the other rank through the averaged gradients: in a bucket averaged
  // during the backward (the default), and in the one average after it.
  for (const std::string buckets : {"256", "0"}) {
    CAPTURE(buckets);
    const fs::path log = d / ("hit" + buckets + ".jsonl");
    const Result hit = run(mpirun(2, common + log.string() + " --bucket-kb " + buckets,
                                  "DSC_TEST_INJECT_OVERFLOW=1:3"),
                           d / "hit.txt");
    REQUIRE_MESSAGE(hit.rc == 0, hit.output);
    CHECK(records(log, "header").at(0)["gradient_buckets"].empty() == (buckets == "0"));
    const nlohmann::json b = records(log, "epoch").at(0);
    CHECK(b["skipped_steps"].get<int>() == a["skipped_steps"].get<int>() + 1);
    CHECK(b["loss_scale"].get<double>() == doctest::Approx(a["loss_scale"].get<double>() / 2));
    // Had rank 1 applied its update (its gradient holds an inf) the replicas would differ.
    const nlohmann::json crc = records(log, "replicas").at(0)["crc32"];
    CHECK(crc[0] == crc[1]);
  }
  fs::remove_all(d);
}

// With two ranks each element of the average is (a + b) / 2 whichever way the buffer is cut, so
// gradients averaged in buckets during the backward must train the very same weights as one
// average after it.
TEST_CASE("mpirun -np 2: gradient buckets during the backward train the same weights as one "
          "average after it" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("buckets");
  const std::string common =
      "--model depsep --batch 128 --limit-train 512 --limit-test 100 --epochs 1 --save ";
  for (const std::string kb : {"0", "64"}) {
    const Result r = run(mpirun(2, common + (d / (kb + ".ckpt")).string() + " --bucket-kb " + kb +
                                       " --log " + (d / (kb + ".jsonl")).string()),
                         d / (kb + ".txt"));
    REQUIRE_MESSAGE(r.rc == 0, r.output);
    CHECK(r.output.find(kb == "0" ? "gradients averaged after the backward"
                                  : "gradients averaged in ") != std::string::npos);
  }
  const nlohmann::json header = records(d / "64.jsonl", "header").at(0);
  const std::vector<int64_t> buckets = header["gradient_buckets"];
  REQUIRE(buckets.size() >= 2);
  int64_t total = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (i > 0) CHECK(buckets[i] * 4 >= 64 * 1024);  // all but the first reach the size
    total += buckets[i];
  }
  CHECK(total == header["trainable_params"].get<int64_t>());
  CHECK(records(d / "0.jsonl", "header").at(0)["gradient_buckets"].empty());
  const auto [diff, scale] = max_difference("depsep", d / "0.ckpt", d / "64.ckpt");
  MESSAGE("largest difference after 4 steps " << diff << " (largest value " << scale << ")");
  CHECK(diff == 0);
  for (const char* kb : {"0", "64"}) {
    const nlohmann::json e = records(d / (std::string(kb) + ".jsonl"), "epoch").at(0);
    CHECK(e["allreduce_exposed_s"].get<double>() >= 0);
    CHECK(e["rank_skew_s"].get<double>() >= 0);
  }
  fs::remove_all(d);
}

// Checkpoints of N ranks are rank 0's; a mid-epoch one also holds the running loss and accuracy
// sums of every rank. Resumed on the same number of ranks, the run must go on exactly as if it had
// not stopped: the same weights, BatchNorm buffers and epoch lines.
TEST_CASE("mpirun -np 2: a run resumed from a mid-epoch checkpoint ends bit-identical to the "
          "uninterrupted run" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("resume");
  const std::string common =
      "--model depsep --batch 128 --limit-train 1024 --limit-test 100 --epochs 2 ";
  // 2 epochs of 8 steps, saved every 3 steps of the run and at each epoch's end, all kept: the
  // newest is the end of epoch 2, then steps 7, 4, 1 of epoch 2, the end of epoch 1 (.4), and
  // ref.ckpt.5 is step 6 of epoch 1.
  const std::string ref = (d / "ref.ckpt").string();
  const Result a = run(mpirun(2, common + "--save " + ref + " --save-every 3 --keep 10 --log " +
                                     (d / "ref.jsonl").string()),
                       d / "ref.txt");
  REQUIRE_MESSAGE(a.rc == 0, a.output);
  const std::string from = (d / "from.ckpt").string();
  fs::copy_file(ref + ".5", from);
  const nlohmann::json at = dsc::read_checkpoint_meta(from)["training"];
  REQUIRE(at["epoch"] == 1);
  REQUIRE(at["batch"] == 6);
  const Result b = run(mpirun(2, common + "--resume " + from + " --save " + from + " --log " +
                                     (d / "from.jsonl").string()),
                       d / "from.txt");
  REQUIRE_MESSAGE(b.rc == 0, b.output);
  CHECK(b.output.find("resumed    " + from) != std::string::npos);
  const auto [diff, scale] = max_difference("depsep", ref, from);
  MESSAGE("largest difference after 16 steps " << diff << " (largest value " << scale << ")");
  CHECK(diff == 0);
  const auto ref_epochs = records(d / "ref.jsonl", "epoch");
  const auto resumed_epochs = records(d / "from.jsonl", "epoch");
  REQUIRE(ref_epochs.size() == 2);
  REQUIRE(resumed_epochs.size() == 2);  // epoch 1 finished by the resumed run, then epoch 2
  for (size_t e = 0; e < 2; ++e)
    for (const char* key : {"train_loss", "train_acc", "test_loss", "test_acc"}) {
      CAPTURE(key);
      CHECK(resumed_epochs[e][key] == ref_epochs[e][key]);
    }
  const auto replicas = records(d / "from.jsonl", "replicas");
  REQUIRE(!replicas.empty());
  CHECK(replicas.back()["crc32"][0] == replicas.back()["crc32"][1]);
  fs::remove_all(d);
}

// A 20-step run on 2 ranks in which `env` makes rank 1 fail early; its output and time.
Result failing_run(const std::string& name, const std::string& env) {
  const fs::path d = temp_dir(name);
  const Result r = run(
      mpirun(2, "--model depsep --batch 128 --limit-train 2560 --limit-test 100 --epochs 1", env),
      d / "out.txt", 60);
  MESSAGE("exit " << r.rc << " after " << r.seconds << " s:\n" << r.output);
  fs::remove_all(d);
  return r;
}

TEST_CASE("mpirun -np 2: a rank killed mid-run stops the other within seconds, naming it" *
          doctest::skip(kSkip)) {
  const Result r = failing_run("kill", "DSC_TEST_INJECT_CRASH=1:3");
  CHECK(r.rc != 0);
  CHECK(r.seconds < 30);  // the time limit is 60 s: the launcher ended the job
  CHECK(r.output.find("rank 1") != std::string::npos);
}

TEST_CASE("mpirun -np 2: an error on one rank ends every rank with the rank's message" *
          doctest::skip(kSkip)) {
  const Result r = failing_run("error", "DSC_TEST_INJECT_ERROR=1:2");
  CHECK(r.rc != 0);
  CHECK(r.seconds < 30);
  CHECK(r.output.find("error: rank 1 of 2: DSC_TEST_INJECT_ERROR") != std::string::npos);
}

TEST_CASE("mpirun -np 2: bad combinations are one-line errors before training" *
          doctest::skip(kSkip)) {
  const fs::path d = temp_dir("bad");
  const Result r = run(mpirun(2, "--batch 127 --limit-train 1024"), d / "out.txt", 60);
  CHECK(r.rc != 0);
  const std::string line = "error: --batch 127 is the global batch and must be divisible by the 2";
  CHECK_MESSAGE(r.output.find(line) != std::string::npos, r.output);
  CHECK(r.output.find(line) == r.output.rfind(line));  // printed once, not by every rank
  CHECK(r.output.find("epoch 1") == std::string::npos);
  fs::remove_all(d);
}

// A world of two ranks that records what DataParallel asks of it (no MPI needed): where each
// started average lies in the gradient buffer, and how many backward nodes had run by then.
struct RecordingComm : dsc::dist::Communicator {
  RecordingComm() { size_ = 2; }
  const float* base = nullptr;
  std::vector<std::pair<int64_t, int64_t>> started;  // (first element, elements)
  std::vector<int> started_after;                    // progress() calls before each start
  int progress_calls = 0, waits = 0, blocking = 0;
  std::string engine() const override { return "recording"; }
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_max(double*, int64_t) override {}
  void barrier() override {}
  void broadcast(void*, int64_t, int) override {}
  void allreduce_mean(dsc::Tensor&) override { ++blocking; }
  void allreduce_sum(dsc::Tensor&) override {}
  void start_allreduce_mean(dsc::Tensor& t) override {
    started.push_back({t.data<float>() - base, t.numel()});
    started_after.push_back(progress_calls);
  }
  void progress() override { ++progress_calls; }
  void wait_all() override { ++waits; }
  void broadcast(dsc::Tensor&, int) override {}
  bool bind_gpu() override { return false; }
  [[noreturn]] void abort(const std::string&, int) override { std::abort(); }
};

TEST_CASE("DataParallel starts each gradient bucket once, during the backward, from the end") {
  using namespace dsc;
  auto model = make_model("normal", ModelSpec{});
  Sgd sgd(*model);
  LossScaler scaler(LossScalerOptions{.enabled = false}, Device::CPU);
  TrainStep step(*model, sgd, scaler, DType::F32);
  RecordingComm comm;
  DataParallel dp(comm);
  step.set_reducer(&dp);
  Tensor& grads = sgd.parameters().grads();
  comm.base = grads.data<float>();
  std::mt19937_64 rng(5);
  const Tensor images = Tensor::randn({4, 3, 32, 32}, rng);
  const Tensor labels = Tensor::from(std::vector<double>{1, 7, 3, 0}, {4}, DType::I32);

  dp.set_buckets(model->parameters(), grads, 256 * 1024);
  const std::vector<int64_t> sizes = dp.bucket_sizes();
  REQUIRE(sizes.size() >= 3);
  // The buckets tile the buffer at parameter boundaries; every one but the first holds 256 KiB.
  std::vector<int64_t> boundaries{0};
  for (const NamedTensor& p : model->parameters())
    boundaries.push_back(boundaries.back() + p.tensor.numel());
  int64_t begin = 0;
  for (size_t b = 0; b < sizes.size(); ++b) {
    CAPTURE(b);
    if (b > 0) CHECK(sizes[b] * 4 >= 256 * 1024);
    begin += sizes[b];
    CHECK(std::find(boundaries.begin(), boundaries.end(), begin) != boundaries.end());
  }
  CHECK(begin == grads.numel());

  for (int s = 0; s < 2; ++s) {  // the hook is set up again for every step
    CAPTURE(s);
    comm.started.clear();
    comm.started_after.clear();
    comm.progress_calls = 0;
    step(images, labels);
    // Each bucket once, from the last; the last ones while nodes of the backward remained.
    REQUIRE(comm.started.size() == sizes.size());
    int64_t end = grads.numel();
    for (size_t i = 0; i < sizes.size(); ++i) {
      const size_t b = sizes.size() - 1 - i;
      CHECK(comm.started[i].second == sizes[b]);
      CHECK(comm.started[i].first == end - sizes[b]);
      end -= sizes[b];
    }
    CHECK(comm.started_after.front() < comm.progress_calls / 2);
    CHECK(comm.waits == s + 1);
    CHECK(comm.blocking == 0);
  }

  // 0: one average of the whole buffer after the backward.
  dp.set_buckets(model->parameters(), grads, 0);
  CHECK(dp.bucket_sizes().empty());
  comm.started.clear();
  step(images, labels);
  CHECK(comm.started.empty());
  CHECK(comm.blocking == 1);
  // A bucket larger than the model: one average as well.
  dp.set_buckets(model->parameters(), grads, 64 << 20);
  CHECK(dp.bucket_sizes().empty());
}

TEST_CASE("--sync-bn with one process is a one-line error" * doctest::skip(!have_data())) {
  const fs::path d = temp_dir("one");
  const Result r = run(train_cmd("--sync-bn --limit-train 256"), d / "out.txt", 60);
  CHECK(r.rc == 1);
  CHECK_MESSAGE(r.output.find("error: --sync-bn needs several ranks") != std::string::npos,
                r.output);
  fs::remove_all(d);
}

TEST_CASE("a build without MPI refuses a launch of several ranks" *
          doctest::skip(dsc::dist::built_with_mpi() || !have_data())) {
  const fs::path d = temp_dir("nompi");
  const Result r =
      run("env OMPI_COMM_WORLD_SIZE=2 " + train_cmd("--limit-train 256"), d / "out.txt", 60);
  CHECK(r.rc == 1);
  CHECK_MESSAGE(r.output.find("launched as 2 ranks (OMPI_COMM_WORLD_SIZE=2), but this build of "
                              "dsc has no MPI") != std::string::npos,
                r.output);
  fs::remove_all(d);
}
