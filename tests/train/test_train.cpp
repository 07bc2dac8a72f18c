// The `train` program through train_main: flag errors and exit codes, bad data paths, unwritable
// logs, and a short real training run on CIFAR-10 images whose accuracy must rise well above
// chance, with its JSON-lines log and the compare table.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "train/kernel_flags.h"
#include "train/run_log.h"
#include "train/trainer.h"
#include "train_run.h"

namespace fs = std::filesystem;
using dsc_test::real_data;
using dsc_test::Run;
using dsc_test::temp_dir;
using dsc_test::train;

TEST_CASE("train --help lists every flag and exits 0") {
  Run r = train({"--help"});
  CHECK(r.rc == 0);
  for (const char* flag : {"--model",
                           "--batch",
                           "--epochs",
                           "--lr",
                           "--optimizer",
                           "--schedule",
                           "--augment",
                           "--device",
                           "--threads",
                           "--seed",
                           "--data",
                           "--log",
                           "--limit-train",
                           "--limit-test",
                           "--precision",
                           "--csv",
                           "--compare",
                           "--graph",
                           "--depthwise",
                           "--pointwise",
                           "--depsep",
                           "--conv-search",
                           "--conv-workspace-mb",
                           "--nondeterministic"}) {
    CHECK_MESSAGE(r.out.find(flag) != std::string::npos, flag);
  }
}

TEST_CASE("train rejects unknown and malformed flags with exit code 2") {
  Run a = train({"--bogus"});
  CHECK(a.rc == 2);
  CHECK(a.err.find("--bogus") != std::string::npos);
  Run b = train({"--batch", "abc"});
  CHECK(b.rc == 2);
  CHECK(b.err.find("--batch") != std::string::npos);
  Run c = train({"--epochs"});
  CHECK(c.rc == 2);
  // Kernel choices are checked at parse time, naming the flag and the accepted values.
  Run d = train({"--depthwise", "fastest"});
  CHECK(d.rc == 2);
  CHECK(d.err.find("--depthwise") != std::string::npos);
  CHECK(d.err.find("own") != std::string::npos);
  Run e = train({"--conv-workspace-mb", "-5"});
  CHECK(e.rc == 2);
  CHECK(e.err.find("--conv-workspace-mb") != std::string::npos);
}

TEST_CASE("kernel-choice flags map onto the kernel options") {
  dsc::KernelFlags f;
  CHECK(dsc::to_kernel_options(f) == dsc::KernelOptions{});
  f.depthwise = "cudnn";
  f.pointwise = "cudnn";
  f.depsep = "composed";
  f.conv_search = "heuristic";
  f.conv_workspace_mb = 64;
  f.nondeterministic = true;
  const dsc::KernelOptions o = dsc::to_kernel_options(f);
  CHECK(o.depthwise == dsc::KernelOptions::Depthwise::Cudnn);
  CHECK(o.pointwise == dsc::KernelOptions::Pointwise::Cudnn);
  CHECK(o.depsep == dsc::KernelOptions::DepSep::Composed);
  CHECK(o.conv_search == dsc::KernelOptions::ConvSearch::Heuristic);
  CHECK(o.conv_workspace_mb == 64);
  CHECK_FALSE(o.deterministic);
}

TEST_CASE("train rejects bad values with a message naming the flag") {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--model", "resnet"}, "unknown model 'resnet'"},
      {{"--batch", "0"}, "--batch must be at least 1"},
      {{"--epochs", "0"}, "--epochs must be at least 1"},
      {{"--lr", "-1"}, "--lr must be a positive number"},
      {{"--optimizer", "rmsprop"}, "unknown optimizer 'rmsprop'"},
      {{"--schedule", "step"}, "unknown schedule 'step'"},
      {{"--device", "tpu"}, "unknown device 'tpu'"},
      {{"--precision", "bf16"}, "unknown precision 'bf16'"},
      {{"--graph", "sometimes"}, "--graph: unknown mode 'sometimes'"},
      {{"--graph", "on", "--device", "cpu"}, "--graph on: step graphs need --device cuda"},
      {{"--graph", "on", "--schedule", "cosine"}, "a step graph freezes the learning rate"},
      {{"--graph", "on", "--warmup-epochs", "1", "--epochs", "3"}, "with --warmup-epochs"},
      {{"--warmup-steps", "-1"}, "--warmup-steps must be >= 0"},
      {{"--eval-batch", "0"}, "--eval-batch must be at least 1"},
  };
  for (const Case& c : cases) {
    Run r = train(c.args);
    CHECK(r.rc == 1);
    CHECK_MESSAGE(r.err.find(c.expect) != std::string::npos, r.err);
    CHECK(r.err.rfind("error: ", 0) == 0);
  }
}

TEST_CASE("train --device cuda without a usable GPU says why and suggests --device cpu" *
          doctest::skip(dsc::device_available(dsc::Device::CUDA))) {
  Run r = train({"--device", "cuda"});
  CHECK(r.rc == 1);
  CHECK(r.err.find("--device cpu") != std::string::npos);
}

TEST_CASE("train names a missing data folder") {
  Run r = train({"--data", "/nonexistent/cifar"});
  CHECK(r.rc == 1);
  CHECK(r.err.find("/nonexistent/cifar") != std::string::npos);
}

TEST_CASE("train on real images: bad batch and log paths fail before training") {
  const std::string data = real_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  Run big = train({"--data", data, "--limit-train", "100", "--limit-test", "50", "--batch", "200"});
  CHECK(big.rc == 1);
  CHECK(big.err.find("larger than the training set (100 images") != std::string::npos);

  Run log = train({"--data", data, "--limit-train", "100", "--limit-test", "50", "--batch", "50",
                   "--log", "/nonexistent-dir/run.jsonl"});
  CHECK(log.rc == 1);
  CHECK(log.err.find("cannot write log file '/nonexistent-dir/run.jsonl'") != std::string::npos);
}

TEST_CASE("train on a few hundred real images: accuracy rises well above chance, logs are whole") {
  const std::string data = real_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  const fs::path dir = temp_dir("train_run");
  const std::string log = (dir / "run.jsonl").string(), csv = (dir / "run.csv").string();
  Run r =
      train({"--model",  "depsep", "--data",  data, "--limit-train", "400", "--limit-test", "200",
             "--epochs", "3",      "--batch", "16", "--eval-batch",  "200", "--seed",       "3",
             "--log",    log,      "--csv",   csv});
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(r.out.find("135,973 parameters (135,717 trainable)") != std::string::npos);
  CHECK(r.out.find("| depsep | cpu | fp32 | 16 | 135,973 |") != std::string::npos);

  std::vector<nlohmann::json> lines = dsc::read_run_log(log);
  REQUIRE(lines.size() == 5);  // header, 3 epochs, summary
  CHECK(lines[0]["type"] == "header");
  CHECK(lines[0]["params"] == 135973);
  CHECK(lines[0]["trainable_params"] == 135717);
  CHECK(lines[0]["graph"] == "off (cpu)");
  for (int e = 1; e <= 3; ++e) {
    const nlohmann::json& j = lines[e];
    CHECK(j["type"] == "epoch");
    CHECK(j["epoch"] == e);
    for (const char* key : {"train_loss", "train_acc", "test_loss", "test_acc", "images_per_sec",
                            "data_wait_s", "wall_s"}) {
      CHECK_MESSAGE(j.contains(key), key);
    }
    CHECK(j["images_per_sec"].get<double>() > 0);
  }
  // The training loss falls and the model learns far beyond 10% chance on what it saw.
  CHECK(lines[3]["train_loss"].get<double>() < lines[1]["train_loss"].get<double>() - 0.2);
  const nlohmann::json& s = lines[4];
  CHECK(s["type"] == "summary");
  CHECK(s["train_acc"].get<double>() > 0.3);
  CHECK(s["test_acc"].get<double>() > 0.15);
  CHECK(s["peak_images_per_sec"].get<double>() >= s["median_images_per_sec"].get<double>());
  // The issue's one-line record: images_per_sec is the seed's (the best timed epoch); no GPU here.
  CHECK(s["images_per_sec"] == s["peak_images_per_sec"]);
  for (const char* key : {"gpu", "sm_util", "mem_util"}) {
    CHECK_MESSAGE(s.contains(key), key);
    CHECK_MESSAGE(s[key].is_null(), key);
  }
  CHECK(r.out.find("% | n/a | n/a |") != std::string::npos);
  CHECK(s["graph"] == "off (cpu)");
  CHECK(s["graph_replays"] == 0);

  std::ifstream c(csv);
  std::string header_line;
  std::getline(c, header_line);
  CHECK(header_line.find("train_loss") != std::string::npos);
  int rows = 0;
  for (std::string line; std::getline(c, line);) rows += !line.empty();
  CHECK(rows == 3);

  const std::string table = dsc::compare_runs({log, log});
  CHECK(table.find("| run.jsonl | ours | depsep | cpu | fp32 | 16 | 135,973 | 3 |") !=
        std::string::npos);
  Run cmp = train({"--compare", log});
  CHECK(cmp.rc == 0);
  CHECK(cmp.out.find("depsep") != std::string::npos);
}

TEST_CASE("compare summarises runs of the same setup as mean ± sd") {
  const fs::path dir = temp_dir("train_compare_groups");
  auto write_run = [&](const std::string& name, const std::string& framework, double ips,
                       double loss, double train_acc, double test_acc, bool finished) {
    std::ofstream f(dir / name);
    f << R"({"type":"header","framework":")" << framework
      << R"(","model":"depsep","device":"cpu","precision":"fp32","batch":128,"params":135973})"
      << "\n"
      << R"({"type":"epoch","epoch":1,"train_loss":)" << loss << "}\n";
    if (finished) {
      f << R"({"type":"summary","peak_images_per_sec":)" << ips << R"(,"median_images_per_sec":)"
        << ips << R"(,"train_acc":)" << train_acc << R"(,"test_acc":)" << test_acc
        << (framework == "pytorch" ? R"(,"sm_util":57.5,"mem_util":17.94)" : "") << "}\n";
    }
    return (dir / name).string();
  };
  const std::vector<std::string> logs = {
      write_run("a0.jsonl", "ours", 360, 1.30, 0.50, 0.40, true),
      write_run("b0.jsonl", "pytorch", 170, 1.20, 0.61, 0.55, true),
      write_run("a1.jsonl", "ours", 370, 1.28, 0.60, 0.50, true),
      write_run("b1.jsonl", "pytorch", 180, 1.24, 0.63, 0.57, true),
      write_run("a2.jsonl", "ours", 999, 9.99, 0.99, 0.99, false),  // unfinished: not averaged
  };
  const std::string table = dsc::compare_runs(logs);
  INFO(table);
  CHECK(table.find("| a2.jsonl | ours | depsep | cpu | fp32 | 128 | 135,973 | 1 | - | - | - | - | "
                   "n/a | n/a | (unfinished)") != std::string::npos);
  CHECK(table.find("| b0.jsonl | pytorch | depsep | cpu | fp32 | 128 | 135,973 | 1 | 170 | 170 | "
                   "61.0% | 55.0% | 57.5% | 17.9% |") != std::string::npos);
  // sd of {0.40, 0.50} is 0.0707; of {360, 370} 7.07; of {1.30, 1.28} 0.0141.
  CHECK(table.find("| ours | depsep | cpu | fp32 | 128 | 1 | 2 | 365 ± 7 | 1.290 ± 0.014 | "
                   "55.0% ± 7.1% | 45.0% ± 7.1% |") != std::string::npos);
  CHECK(table.find("| pytorch | depsep | cpu | fp32 | 128 | 1 | 2 | 175 ± 7 | 1.220 ± 0.028 | "
                   "62.0% ± 1.4% | 56.0% ± 1.4% |") != std::string::npos);
  // One run per setup: no summary table.
  CHECK(dsc::compare_runs({logs[0], logs[1]}).find("± ") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("compare tells runs replayed from a step graph from eager ones") {
  const fs::path dir = temp_dir("train_compare_graph");
  auto write_run = [&](const std::string& name, const std::string& graph, double ips) {
    std::ofstream f(dir / name);
    f << R"({"type":"header","framework":"ours","model":"normal","device":"cuda",)"
      << R"("precision":"amp","batch":128,"params":528778,"graph":"on"})"
      << "\n"
      << R"({"type":"epoch","epoch":1,"train_loss":1.5})"
      << "\n"
      << R"({"type":"summary","peak_images_per_sec":)" << ips << R"(,"median_images_per_sec":)"
      << ips << R"(,"train_acc":0.5,"test_acc":0.5,"graph":")" << graph << R"("})"
      << "\n";
    return (dir / name).string();
  };
  // The summary says what happened: the second run's capture failed, so it trained eagerly.
  const std::string table = dsc::compare_runs(
      {write_run("g0.jsonl", "on", 1000), write_run("e0.jsonl", "off (capture failed: x)", 500),
       write_run("g1.jsonl", "on", 1100)});
  INFO(table);
  CHECK(table.find("| g0.jsonl | ours (graph) | normal | cuda | amp |") != std::string::npos);
  CHECK(table.find("| e0.jsonl | ours | normal | cuda | amp |") != std::string::npos);
  CHECK(table.find("| ours (graph) | normal | cuda | amp | 128 | 1 | 2 | 1050 ± 71 |") !=
        std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("compare tells data-parallel runs from one process's by their ranks") {
  const fs::path dir = temp_dir("train_compare_ranks");
  auto write_run = [&](const std::string& name, int ranks, double ips) {
    std::ofstream f(dir / name);
    f << R"({"type":"header","framework":"ours","model":"depsep","device":"cpu",)"
      << R"("precision":"fp32","batch":128,"params":135973,"world_size":)" << ranks << "}\n"
      << R"({"type":"epoch","epoch":1,"train_loss":1.5})"
      << "\n"
      << R"({"type":"summary","peak_images_per_sec":)" << ips << R"(,"median_images_per_sec":)"
      << ips << R"(,"train_acc":0.5,"test_acc":0.5})"
      << "\n";
    return (dir / name).string();
  };
  const std::string table =
      dsc::compare_runs({write_run("one_a.jsonl", 1, 400), write_run("two_a.jsonl", 2, 430),
                         write_run("one_b.jsonl", 1, 410), write_run("two_b.jsonl", 2, 450)});
  INFO(table);
  CHECK(table.find("| one_a.jsonl | ours | depsep | cpu | fp32 |") != std::string::npos);
  CHECK(table.find("| two_a.jsonl | ours | depsep | cpu x 2 ranks | fp32 |") != std::string::npos);
  // Two groups of two runs each, never one of four.
  CHECK(table.find("| ours | depsep | cpu | fp32 | 128 | 1 | 2 | 405 ± 7 |") != std::string::npos);
  CHECK(table.find("| ours | depsep | cpu x 2 ranks | fp32 | 128 | 1 | 2 | 440 ± 14 |") !=
        std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("compare: logs without epoch lines, fields of other types, lines that are not objects") {
  // Found by scripts/fuzz.sh run_log (tests/fuzz/regressions/run_log_summary_without_epochs.jsonl,
  // a real log whose epoch lines were cut): two finished runs of the same setup with no epoch line
  // (as `train --epochs 0` writes) made the mean ± sd row read a field of the missing epoch record,
  // and the JSON library's type error escaped instead of a table.
  std::ifstream crash(std::string(DSC_SOURCE_DIR) +
                      "/tests/fuzz/regressions/run_log_summary_without_epochs.jsonl");
  REQUIRE(crash.good());
  const std::vector<nlohmann::json> cut = dsc::parse_run_log(crash, "cut.jsonl");
  std::string table;
  CHECK_NOTHROW(table = dsc::compare_run_records({{"a.jsonl", cut}, {"b.jsonl", cut}}));
  CHECK(table.find("| a.jsonl | ours | depsep | cpu | fp32 | 128 |") != std::string::npos);

  std::istringstream eval(R"({"type":"header","model":"depsep","batch":128}
{"type":"summary","test_acc":0.5}
)");
  const std::vector<nlohmann::json> records = dsc::parse_run_log(eval, "eval.jsonl");
  table = dsc::compare_run_records({{"a.jsonl", records}, {"b.jsonl", records}});
  INFO(table);
  CHECK(table.find("| ours | depsep | ? | ? | 128 | 0 | 2 | - | - | - | 50.0% ± 0.0% |") !=
        std::string::npos);

  // A number or a list where a name is expected is shown as JSON; a "type" that is not a string
  // marks no kind of record.
  std::istringstream odd(R"({"type":"header","model":7,"device":["cpu"],"batch":"128"}
{"type":1,"epoch":1}
)");
  table = dsc::compare_run_records({{"odd.jsonl", dsc::parse_run_log(odd, "odd.jsonl")}});
  CHECK(table.find(R"(| odd.jsonl | ours | 7 | ["cpu"] | ? | - | - | 0 |)") != std::string::npos);

  std::istringstream list("{\"type\":\"header\"}\n[1, 2]\n");
  std::string message;
  try {
    dsc::parse_run_log(list, "list.jsonl");
  } catch (const dsc::Error& e) {
    message = e.what();
  }
  CHECK(message ==
        "run log 'list.jsonl' line 2 is array, expected a JSON object (one record per line)");
}
