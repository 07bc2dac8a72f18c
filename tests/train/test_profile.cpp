// The training-step profile (train/profile.h, profile_counts.h, step_profiler.h): every row's
// multiply-adds, FLOPs and bytes against the formulas written out by hand for the seed's two
// models; the profiler's rows and the fused DepSep rows' kernel phases; `train --profile` end to end on real CIFAR-10 images (both models:
// every layer's forward and backward row, the step rows, the total, the JSON lines parse and
// `compare` still reads the logs; the plot is drawn when matplotlib is there); flag errors.
// Whether the rows add up to the step time is a benchmark check (bench/results/profile/), not a
// test: it needs a quiet machine.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/phases.h"
#include "data/cifar10.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "train/profile.h"
#include "train/profile_counts.h"
#include "train/run_log.h"
#include "train/step.h"
#include "train_run.h"

namespace fs = std::filesystem;
using dsc_test::real_data;
using dsc_test::Run;
using dsc_test::temp_dir;
using dsc_test::train;

namespace dsc {
namespace {

const Module& child(const Sequential& m, const std::string& name) {
  for (const auto& [n, c] : m.children())
    if (n == name) return *c;
  FAIL("no child " << name);
  throw 0;
}

void check_counts(const WorkCounts& w, int64_t macs, int64_t flops, int64_t bytes) {
  CHECK(w.known);
  CHECK(w.macs == macs);
  CHECK(w.flops == flops);
  CHECK(w.bytes == bytes);
}


TEST_CASE("profile counts: each layer of both seed models equals the formulas, fp32 and fp16") {
  const int64_t B = 128, HW = 32 * 32;
  for (int e : {4, 2}) {
    auto normal = make_seed_cnn(ModelKind::Normal, 0);
    auto depsep = make_seed_cnn(ModelKind::DepSep, 0);
    const Shape image{B, 3, 32, 32}, act{B, 128, 32, 32}, pooled{B, 128, 8, 8};
    for (bool bwd : {false, true}) {
      const int64_t k = bwd ? 2 : 1;  // backward: data + weight gradients
      // conv1, normal: M N C K H W B multiply-adds; params + input + output activations
      int64_t macs = 9 * 3 * 128 * HW * B;
      check_counts(layer_counts(child(*normal, "conv1"), image, act, e, bwd), k * macs,
                   k * (2 * macs + B * 128 * HW),
                   k * (9 * 3 * 128 + 128 + B * (3 + 128) * HW) * e);
      macs = 9 * 128 * 128 * HW * B;
      check_counts(layer_counts(child(*normal, "conv3"), act, act, e, bwd), k * macs,
                   k * (2 * macs + B * 128 * HW),
                   k * (9 * 128 * 128 + 128 + B * 256 * HW) * e);
      // DepSep, fused (the depthwise output never goes to memory)
      macs = (9 * 3 + 3 * 128) * HW * B;
      check_counts(layer_counts(child(*depsep, "conv1"), image, act, e, bwd), k * macs,
                   k * (2 * macs + B * 128 * HW),
                   k * (9 * 3 + 3 * 128 + 128 + B * (3 + 128) * HW) * e);
      macs = (9 * 128 + 128 * 128) * HW * B;
      check_counts(layer_counts(child(*depsep, "conv2"), act, act, e, bwd), k * macs,
                   k * (2 * macs + B * 128 * HW),
                   k * (9 * 128 + 128 * 128 + 128 + B * 256 * HW) * e);
      for (const auto& m : {normal, depsep}) {
        const int64_t n = B * 128 * HW, m8 = B * 128 * 64;
        check_counts(layer_counts(child(*m, "pool"), act, pooled, e, bwd), 0, bwd ? 0 : m8 * 16,
                     (n + m8) * e);
        check_counts(layer_counts(child(*m, "bn"), pooled, pooled, e, bwd), 0,
                     bwd ? 7 * m8 : 5 * m8, bwd ? (3 * m8 + 4 * 128) * e : (2 * m8 + 4 * 128) * e);
        check_counts(layer_counts(child(*m, "flatten"), pooled, {B, 8192}, e, bwd), 0, 0, 0);
        macs = B * 8192 * 10;
        check_counts(layer_counts(child(*m, "fc"), {B, 8192}, {B, 10}, e, bwd), k * macs,
                     k * (2 * macs + B * 10), k * (8192 * 10 + 10 + B * (8192 + 10)) * e);
      }
    }
    check_counts(loss_counts(B, 10, e, false), 0, 4 * B * 10, B * 10 * e + 4 * B + 4);
    check_counts(loss_counts(B, 10, e, true), 0, 3 * B * 10, 2 * B * 10 * e + 4 * B);
  }
  StepShape s{128, 10, 128 * 3 * HW, 135717, 4, "adam"};
  check_counts(step_row_counts("data copy", s), 0, 0, 2 * (4 * 128 * 3 * HW + 4 * 128));
  check_counts(step_row_counts("input cast", s), 0, 0, 6 * 128 * 3 * HW);
  check_counts(step_row_counts("zero grad", s), 0, 0, 4 * 135717);
  check_counts(step_row_counts("param cast", s), 0, 0, 6 * 135717);
  check_counts(step_row_counts("finite check", s), 0, 135717, 4 * 135717);
  check_counts(step_row_counts("loss-scale check", s), 0, 135717, 4 * 135717);
  check_counts(step_row_counts("optimizer", s), 0, 12 * 135717, 28 * 135717);
  check_counts(step_row_counts("tally", s), 0, 1280, 1280 * 4 + 4 * 128);
  s.optimizer = "sgd";
  check_counts(step_row_counts("optimizer", s), 0, 4 * 135717, 20 * 135717);
  CHECK_FALSE(step_row_counts("something else", s).known);
  GlobalAvgPool2d unknown;
  CHECK_FALSE(layer_counts(unknown, {B, 128, 8, 8}, {B, 128}, 4, false).known);
}

// The rows every profile of a seed model has, in the step's order of first appearance.
std::vector<std::string> expected_rows(bool amp) {
  std::vector<std::string> rows = {"data copy"};
  if (amp) rows.push_back("input cast");
  rows.push_back("zero grad");
  if (amp) rows.push_back("param cast");
  for (const char* l : {"conv1", "conv2", "conv3", "conv4", "pool", "bn", "flatten", "fc", "loss"}) {
    rows.push_back(std::string(l) + " fwd");
    rows.push_back(std::string(l) + " bwd");
  }
  if (amp) rows.push_back("loss-scale check");  // the step's, before the update
  rows.push_back("optimizer");
  rows.push_back("tally");
  if (!amp) rows.push_back("finite check");  // the Trainer's, after the step
  rows.push_back("unattributed");
  return rows;
}

TEST_CASE("run_profile: a row per layer and pass, times that add up, counts and limits, fp32 and "
          "mixed precision") {
  for (bool amp : {false, true}) {
    CAPTURE(amp);
    SeedCnnOptions small;
    small.channels = 16;  // conv2-4 above the fused small-C backward (up to 8)
    small.image = 8;
    auto net = make_seed_cnn(ModelKind::DepSep, 3, small);
    Adam opt(*net);
    LossScaler scaler(LossScalerOptions{.enabled = amp});
    TrainStep step(*net, opt, scaler, amp ? DType::F16 : DType::F32);
    std::mt19937_64 rng(1);
    Tensor x = Tensor::randn({4, 3, 8, 8}, rng);
    Tensor y = Tensor::from({1.0, 2.0, 3.0, 4.0}, {4}, DType::I32);
    Tensor host = x.clone();
    int plain_steps = 0;
    ProfileSetup s;
    s.model = "depsep";
    s.precision = amp ? "amp" : "fp32";
    s.batch = 4;
    s.optimizer = &opt;
    s.step = [&](StepProfiler* p) {  // as Trainer::profile's step, on fixed data
      plain_steps += p == nullptr;
      profile_mark(p, "data copy");
      x.copy_(host);
      step.set_profiler(p);
      const StepResult r = step(x, y);
      step.set_profiler(nullptr);
      profile_mark(p, "tally");
      ops::sum(r.logits);
      if (!amp) {
        profile_mark(p, "finite check");
        ops::sum(opt.parameters().grads());
      }
    };
    ProfileOptions o;
    o.enabled = true;
    o.steps = 3;
    o.ceilings = DSC_SOURCE_DIR "/bench/results/ceilings_cpu.json";
    std::ostringstream progress;
    const ProfileReport r = run_profile(s, o, progress);
    CHECK(plain_steps == 2 + 3);  // warm-up, then alternating
    std::vector<std::string> names;
    double sum = 0;
    for (const ProfileRow& row : r.rows) {
      names.push_back(row.name);
      sum += row.ms;
      if (row.name == "unattributed") continue;
      CHECK(row.ms >= 0);
      CHECK((row.limit == "compute" || row.limit == "memory" || row.limit == "overhead"));
      const std::string l = row.layer;
      CHECK((row.roofline == "compute" || row.roofline == "memory" ||
             (row.roofline == "none" && l == "flatten")));
      CHECK(row.pass == (row.name.ends_with(" fwd")   ? "forward"
                         : row.name.ends_with(" bwd") ? "backward"
                                                      : "step"));
      if (l.rfind("conv", 0) == 0 || l == "fc") CHECK(row.macs > 0);
      if (l != "flatten") CHECK(row.bytes > 0);
      if (row.ms > 0) CHECK(row.bound_fraction == doctest::Approx(row.bound_ms / row.ms));
    }
    CHECK(names == expected_rows(amp));
    CHECK(sum == doctest::Approx(r.step_ms));  // "unattributed" closes the gap
    CHECK(r.rows_ms > 0);
    CHECK(r.profiled_step_ms > 0);
    CHECK(r.ceilings_source == o.ceilings);
    CHECK(r.peak_flops > 0);
    const std::vector<nlohmann::json> records = profile_records(r);
    CHECK(records.size() == r.rows.size() + 1);
    CHECK(records.back()["row"] == "total");
    CHECK(format_profile(r).find("conv4 bwd") != std::string::npos);
    CHECK(set_backward_observer(nullptr) == nullptr);  // the pass left none installed
    // The fused DepSep layers' rows split into their kernel phases; no other row has any.
    const std::vector<std::string> fwd_phases = {"depthwise", "pointwise"};
    const std::vector<std::string> bwd_phases = {"dw recompute", "relu mask+db", "pointwise dW",
                                                 "pointwise dx", "depthwise dx", "depthwise dW"};
    const std::vector<std::string> small_c_bwd_phases = {"dw recompute", "mask+pointwise",
                                                         "depthwise dx", "depthwise dW"};
    for (size_t i = 0; i < r.rows.size(); ++i) {
      const ProfileRow& row = r.rows[i];
      CAPTURE(row.name);
      std::vector<std::string> got;
      double in_phases = 0;
      for (const ProfilePhase& ph : row.phases) {
        got.push_back(ph.name);
        CHECK(ph.ms >= 0);
        CHECK(ph.percent == doctest::Approx(100 * ph.ms / row.ms));
        in_phases += ph.ms;
      }
      if (row.layer.rfind("conv", 0) == 0) {
        // conv1 has 3 input channels: its mask and pointwise products are one fused pass.
        const std::vector<std::string> bwd_want =
            row.layer == "conv1" ? small_c_bwd_phases : bwd_phases;
        CHECK(got == (row.pass == "forward" ? fwd_phases : bwd_want));
        CHECK(in_phases > 0);
        REQUIRE(records[i].contains("phases"));
        CHECK(records[i]["phases"].size() == got.size());
        CHECK(records[i]["phases"][0]["name"] == got[0]);
      } else {
        CHECK(got.empty());
        CHECK_FALSE(records[i].contains("phases"));
      }
    }
    CHECK(format_profile(r).find("  pointwise dW") != std::string::npos);
    CHECK_FALSE(phases::enabled());  // only while profiled steps run
  }
}

TEST_CASE("train --profile on real images: every layer of both models in the table and the log") {
  const std::string real = real_data();
  if (real.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  // 32 training and 16 test images, packed once (the binary layout loads at once).
  const fs::path dir = temp_dir("profile");
  const std::string small = (dir / "cifar-small").string();
  data::pack_cifar10(data::subset(data::load_cifar10(real, data::Split::kTrain), 32),
                     data::subset(data::load_cifar10(real, data::Split::kTest), 16), small);
  std::vector<std::string> logs;
  for (const std::string model : {"normal", "depsep"}) {
    CAPTURE(model);
    const std::string log = (dir / (model + ".jsonl")).string();
    logs.push_back(log);
    Run r = train({"--model", model, "--data", small, "--epochs", "1", "--batch", "16",
                   "--threads", "2", "--log", log, "--profile", "--profile-steps", "1",
                   "--ceilings",
                   DSC_SOURCE_DIR "/bench/results/ceilings_cpu.json"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(r.out.find("profile    " + model + ", batch 16") != std::string::npos);
    CHECK(r.out.find("unattributed") != std::string::npos);
    std::vector<std::string> rows;
    nlohmann::json total;
    for (const nlohmann::json& j : read_run_log(log)) {
      if (j["type"] != "profile") continue;
      CHECK(j["model"] == model);
      if (j["row"] == "total") {
        total = j;
      } else {
        rows.push_back(j["row"].get<std::string>());
        if (j["row"] != "unattributed") {
          for (const char* key : {"ms", "percent", "macs", "flops", "bytes", "flop_per_s",
                                  "bytes_per_s", "bound_ms", "bound_fraction"})
            CHECK_MESSAGE(j[key].is_number(), key);
          CHECK(j["limit"].is_string());
        }
      }
    }
    CHECK(rows == expected_rows(false));
    REQUIRE(total.is_object());
    CHECK(total["step_ms"].get<double>() > 0);
    CHECK(total["batch"] == 16);
    CHECK(total["ceilings"] == DSC_SOURCE_DIR "/bench/results/ceilings_cpu.json");
  }
  CHECK(compare_runs(logs).find("normal") != std::string::npos);  // compare still reads them
  // The picture, when matplotlib is there (Debian's python3-matplotlib).
  if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") == 0) {
    const std::string svg = (dir / "profile.svg").string();
    const std::string cmd = "/usr/bin/python3 " DSC_SOURCE_DIR "/bench/plot.py profile " +
                            logs[0] + " " + logs[1] + " -o " + svg + " 2>/dev/null";
    CHECK(std::system(cmd.c_str()) == 0);
    CHECK(fs::file_size(svg) > 1000);
  } else {
    MESSAGE("plot skipped: no matplotlib for /usr/bin/python3");
  }
  fs::remove_all(dir);
}

TEST_CASE("train --profile: bad values are one-line errors naming the flag; --help lists them") {
  Run h = train({"--help"});
  for (const char* flag : {"--profile", "--profile-steps", "--ceilings"})
    CHECK_MESSAGE(h.out.find(flag) != std::string::npos, flag);
  struct Case {
    std::vector<std::string> args;
    std::string names;
  };
  for (const Case& c : std::vector<Case>{
           {{"--profile", "--profile-steps", "0"}, "--profile-steps must be at least 1"},
           {{"--profile", "--ceilings", "/nonexistent/ceilings.json"}, "--ceilings: cannot open"},
           {{"--ceilings", DSC_SOURCE_DIR "/bench/results/ceilings_cpu.json"},
            "--ceilings needs --profile"}}) {
    Run r = train(c.args);
    CHECK(r.rc == 1);
    CHECK_MESSAGE(r.err.find(c.names) != std::string::npos, r.err);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  Run r = train({"--profile-steps", "x"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("--profile-steps") != std::string::npos);
}

}  // namespace
}  // namespace dsc
