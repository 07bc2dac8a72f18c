// The `bench` program through bench_main, on the CPU with tiny sizes: `layer` and `sweep` write
// well-formed CSV (parsed back field by field) and JSON lines with the documented keys and numbers
// consistent with the analytic model; flag errors name the flag and exit 2; `bench device` writes
// positive ceilings; the % of roofline matches a hand computation from a fake ceilings file (one
// kind compute-bound, the other memory-bound, forward and forward+backward); an injected
// out-of-memory at one sweep point is recorded and the sweep continues; the timing loop's warm-up
// and statistics; the kernel names derived from the dispatch rules.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "apps/lib/bench_cli.h"
#include "apps/lib/bench_device.h"
#include "apps/lib/bench_layer.h"
#include "apps/lib/bench_report.h"
#include "apps/lib/bench_timing.h"
#include "core/cpu/winograd_gemm.h"
#include "core/error.h"
#include "core/kernel_options.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Run {
  int rc;
  std::string out, err;
};

Run bench(const std::vector<std::string>& args, const dsc::bench::BenchHooks& hooks = {}) {
  std::ostringstream out, err;
  const int rc = dsc::bench::bench_main(args, out, err, hooks);
  return {rc, out.str(), err.str()};
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("dsc_test_bench_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// One CSV record (no embedded newlines): fields split on commas outside double quotes, "" -> ".
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> f(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        f.back() += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        f.back() += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      f.emplace_back();
    } else {
      f.back() += ch;
    }
  }
  REQUIRE_FALSE(quoted);
  return f;
}

// Rows of a CSV file as column -> value, checking every row has the header's width.
std::vector<std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  std::string line;
  REQUIRE(std::getline(in, line));
  const std::vector<std::string> header = csv_fields(line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = csv_fields(line);
    REQUIRE(f.size() == header.size());
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < f.size(); ++i) row[header[i]] = f[i];
    rows.push_back(row);
  }
  return rows;
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  std::vector<json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(json::parse(line));  // throws (fails) on malformed lines
  }
  return rows;
}

double number(const std::map<std::string, std::string>& row, const std::string& key) {
  REQUIRE(row.count(key) == 1);
  size_t used = 0;
  const double v = std::stod(row.at(key), &used);  // throws (fails) on non-numbers
  CHECK(used == row.at(key).size());
  return v;
}

const std::vector<std::string> kRequiredKeys = {"kind",
                                                "device",
                                                "dtype",
                                                "batch",
                                                "channels",
                                                "filters",
                                                "height",
                                                "width",
                                                "kernel",
                                                "padding",
                                                "direction",
                                                "conv_per_sec",
                                                "conv_per_sec_min",
                                                "conv_per_sec_max",
                                                "seconds_per_batch",
                                                "macs_per_sec",
                                                "tflops",
                                                "tflops_mac",
                                                "bytes_per_sec_min_traffic",
                                                "sm_util",
                                                "mem_util",
                                                "kernels",
                                                "status",
                                                "date",
                                                "command"};

// The tiny layer used throughout: C = K = 8, 12x12, 3x3 valid (10x10 out), batch 2, fp32.
std::vector<std::string> tiny(std::vector<std::string> args) {
  for (const char* a : {"--size", "12", "-C", "8", "-K", "8", "--batch", "2", "--min-time", "0.01",
                        "--repeats", "2", "--warmup", "1", "--device", "cpu"}) {
    args.push_back(a);
  }
  return args;
}

// Hand counts of the tiny layer per batch of 2 (see the comments for each number).
constexpr double kNormalMacs = 2.0 * 8 * 8 * 9 * 100;             // 115,200
constexpr double kNormalFlops = 2 * kNormalMacs + 2.0 * 8 * 100;  // + bias adds = 232,000
constexpr double kNormalBytes = (9.0 * 8 * 8 + 8 + 2 * (8 * 144 + 8 * 100)) * 4;     // 17,952
constexpr double kDepsepMacs = 2.0 * (9 * 8 + 8 * 8) * 100;                          // 27,200
constexpr double kDepsepFlops = 2 * kDepsepMacs + 2.0 * 8 * 100;                     // 56,000
constexpr double kDepsepParams = 9.0 * 8 + 8 * 8 + 8;                                // 144
constexpr double kDepsepFusedBytes = (kDepsepParams + 2 * (8 * 144 + 8 * 100)) * 4;  // 16,192
constexpr double kDepsepSeparateBytes =
    (kDepsepParams + 2 * (8 * 144 + 2 * 8 * 100 + 8 * 100)) * 4;  // 28,992

}  // namespace

TEST_CASE("bench --help and each subcommand's --help list their flags and exit 0") {
  Run top = bench({"--help"});
  CHECK(top.rc == 0);
  for (const char* s : {"layer", "sweep", "device"}) CHECK(top.out.find(s) != std::string::npos);
  Run layer = bench({"layer", "--help"});
  CHECK(layer.rc == 0);
  for (const char* f : {"--device", "--dtype", "--channels", "--filters", "--size", "--height",
                        "--width", "--kernel", "--padding", "--batch", "--backward", "--threads",
                        "--min-time", "--repeats", "--kinds", "--json", "--csv", "--ceilings"}) {
    CHECK_MESSAGE(layer.out.find(f) != std::string::npos, f);
  }
  Run sweep = bench({"sweep", "--help"});
  CHECK(sweep.rc == 0);
  CHECK(sweep.out.find("--channels-list") != std::string::npos);
  Run device = bench({"device", "--help"});
  CHECK(device.rc == 0);
  CHECK(device.out.find("--out") != std::string::npos);
}

TEST_CASE(
    "bench layer on the CPU writes well-formed CSV and JSON lines consistent with the model") {
  const fs::path d = temp_dir("layer");
  Run r = bench(tiny({"layer", "--csv", (d / "l.csv").string(), "--json", (d / "l.jsonl").string(),
                      "--no-ceilings"}));
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("depsep/normal") != std::string::npos);

  const auto rows = read_csv(d / "l.csv");
  REQUIRE(rows.size() == 2);
  for (const auto& key : kRequiredKeys) CHECK_MESSAGE(rows[0].count(key) == 1, key);
  CHECK(rows[0].at("kind") == "normal");
  CHECK(rows[1].at("kind") == "depsep");
  for (const auto& row : rows) {
    CHECK(row.at("device") == "cpu");
    CHECK(row.at("dtype") == "fp32");
    CHECK(row.at("status") == "ok");
    CHECK(row.at("direction") == "forward");
    CHECK(row.at("padding") == "valid");
    CHECK(row.at("sm_util").empty());  // NVML figures do not exist on the CPU
    CHECK(number(row, "batch") == 2);
    CHECK(number(row, "channels") == 8);
    CHECK(number(row, "filters") == 8);
    CHECK(number(row, "height") == 12);
    CHECK(number(row, "kernel") == 3);
    const double conv = number(row, "conv_per_sec");
    CHECK(conv > 0);
    CHECK(number(row, "conv_per_sec_min") <= conv * (1 + 1e-6));
    CHECK(number(row, "conv_per_sec_max") >= conv * (1 - 1e-6));
    CHECK(number(row, "seconds_per_batch") * conv == doctest::Approx(2).epsilon(1e-5));
    CHECK(number(row, "tflops") == doctest::Approx(2 * number(row, "tflops_mac")).epsilon(1e-5));
    CHECK(number(row, "tflops_mac") * 1e12 ==
          doctest::Approx(number(row, "macs_per_sec")).epsilon(1e-5));
    CHECK(row.at("date").size() == 20);
    CHECK(row.at("command").rfind("bench layer", 0) == 0);
  }
  // Rates follow the hand counts: multiply-adds and minimal bytes per batch x batches per second.
  const double n_batches = number(rows[0], "conv_per_sec") / 2;
  CHECK(number(rows[0], "macs_per_sec") == doctest::Approx(kNormalMacs * n_batches).epsilon(1e-5));
  CHECK(number(rows[0], "bytes_per_sec_min_traffic") ==
        doctest::Approx(kNormalBytes * n_batches).epsilon(1e-5));
  const double d_batches = number(rows[1], "conv_per_sec") / 2;
  CHECK(number(rows[1], "macs_per_sec") == doctest::Approx(kDepsepMacs * d_batches).epsilon(1e-5));
  CHECK(number(rows[1], "bytes_per_sec_min_traffic") ==
        doctest::Approx(kDepsepFusedBytes * d_batches).epsilon(1e-5));
  CHECK(number(rows[1], "bytes_per_sec_unfused") ==
        doctest::Approx(kDepsepSeparateBytes * d_batches).epsilon(1e-5));

  const auto lines = read_jsonl(d / "l.jsonl");
  REQUIRE(lines.size() == 2);
  for (size_t i = 0; i < lines.size(); ++i) {
    for (const auto& key : kRequiredKeys) CHECK_MESSAGE(lines[i].contains(key), key);
    CHECK(lines[i]["kind"] == rows[i].at("kind"));
    CHECK(lines[i]["conv_per_sec"].get<double>() ==
          doctest::Approx(number(rows[i], "conv_per_sec")).epsilon(1e-6));
    CHECK(lines[i]["sm_util"].is_null());
    CHECK(lines[i].contains("other_cpu_load"));
    CHECK_FALSE(lines[i].contains("roofline_fraction"));  // no ceilings given
  }
}

TEST_CASE("bench layer runs fp16 (f16 storage, f32 compute) and --kinds on the CPU") {
  const fs::path d = temp_dir("fp16");
  Run r = bench(tiny({"layer", "--dtype", "fp16", "--kinds", "depsep", "--padding", "same",
                      "--json", (d / "h.jsonl").string(), "--no-ceilings"}));
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  const auto lines = read_jsonl(d / "h.jsonl");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["kind"] == "depsep");
  CHECK(lines[0]["dtype"] == "fp16");
  CHECK(lines[0]["padding"] == "same");
  CHECK(lines[0]["conv_per_sec"].get<double>() > 0);
  CHECK(lines[0]["kernels"].get<std::string>().find("f16") != std::string::npos);
}

TEST_CASE("bench layer --kinds depsep-fused times the fused op") {
  const fs::path d = temp_dir("fused");
  Run r = bench(tiny({"layer", "--kinds", "depsep,depsep-fused", "--backward", "--json",
                      (d / "f.jsonl").string(), "--no-ceilings"}));
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  const auto lines = read_jsonl(d / "f.jsonl");
  REQUIRE(lines.size() == 2);
  CHECK(lines[1]["kind"] == "depsep-fused");
  CHECK(lines[1]["conv_per_sec"].get<double>() > 0);
  CHECK(lines[1]["kernels"].get<std::string>().find("fused per image") != std::string::npos);
}

TEST_CASE(
    "bench sweep on the CPU writes one row per width and kind, with the columns plot.py reads") {
  const fs::path d = temp_dir("sweep");
  Run r = bench({"sweep", "--device", "cpu", "--size", "12", "--channels-list", "8,16",
                 "--min-time", "0.01", "--repeats", "2", "--warmup", "1", "--csv",
                 (d / "s.csv").string(), "--json", (d / "s.jsonl").string(), "--no-ceilings"});
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  const auto rows = read_csv(d / "s.csv");
  REQUIRE(rows.size() == 4);
  const char* kinds[] = {"normal", "depsep", "normal", "depsep"};
  const double widths[] = {8, 8, 16, 16};
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].at("kind") == kinds[i]);
    CHECK(number(rows[i], "channels") == widths[i]);
    CHECK(number(rows[i], "filters") == widths[i]);
    CHECK(number(rows[i], "batch") == 1);  // the CPU default
    CHECK(number(rows[i], "conv_per_sec") > 0);
    CHECK(number(rows[i], "tflops") > 0);  // plot.py's y-axis
    CHECK(rows[i].at("status") == "ok");
  }
  const auto lines = read_jsonl(d / "s.jsonl");
  REQUIRE(lines.size() == 4);
  for (const auto& l : lines)
    for (const auto& key : kRequiredKeys) CHECK_MESSAGE(l.contains(key), key);
}

TEST_CASE("bench flag errors name the flag and exit 2") {
  struct Case {
    std::vector<std::string> args;
    const char* names;
  };
  const std::vector<Case> cases = {
      {{"layer", "--bogus"}, "--bogus"},
      {{"--bogus"}, "--bogus"},
      {{"layer", "--size", "12", "--kernel", "15"}, "--kernel"},
      {{"layer", "--size", "12", "--kernel", "15", "--padding", "1"}, "--kernel"},
      {{"layer", "-C", "0"}, "--channels"},
      {{"layer", "--filters", "-3"}, "--filters"},
      {{"layer", "--size", "-5"}, "--size"},
      {{"layer", "--size=-5"}, "--size"},
      {{"layer", "--height", "0"}, "--height"},
      {{"layer", "--batch", "1,0"}, "--batch"},
      {{"layer", "--batch", "1,x"}, "--batch"},
      {{"layer", "--kernel", "2", "--padding", "same"}, "--padding"},
      {{"layer", "--padding", "full"}, "--padding"},
      {{"layer", "--kinds", "normal,fused"}, "--kinds"},
      {{"layer", "--dtype", "bf16"}, "--dtype"},
      {{"layer", "--device", "tpu"}, "--device"},
      {{"layer", "--min-time", "-1"}, "--min-time"},
      {{"layer", "--repeats", "0"}, "--repeats"},
      {{"layer", "--threads", "-2"}, "--threads"},
      {{"sweep", "--channels-list", "8,0"}, "--channels-list"},
      {{"sweep", "--batch", "0"}, "--batch"},
      {{"sweep", "--size", "2"}, "--kernel"},
      {{"device", "--gemm-n", "-1"}, "--gemm-n"},
      {{"layer", "--size", "12", "--ceilings", "/nonexistent/ceilings.json"}, "--ceilings"},
  };
  for (const Case& c : cases) {
    Run r = bench(c.args);  // every case fails before anything is built or timed
    INFO((c.args.size() > 1 ? c.args[1] : c.args[0]), " -> ", r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find(c.names) != std::string::npos);
    CHECK(r.out.find("conv/s") == std::string::npos);  // nothing was measured
  }
  Run none = bench({});
  CHECK(none.rc == 2);
  CHECK(none.err.find("subcommand") != std::string::npos);
}

TEST_CASE("bench device on the CPU writes positive ceilings that layer can read back") {
  const fs::path d = temp_dir("device");
  const fs::path out = d / "ceilings.json";
  Run r = bench({"device", "--device", "cpu", "--copy-mb", "4", "--gemm-n", "128", "--min-time",
                 "0.01", "--repeats", "2", "--out", out.string()});
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  std::ifstream in(out);
  const json j = json::parse(in);
  CHECK(j["device"] == "cpu");
  CHECK(j["peak_flops"].get<double>() > 0);
  CHECK(j["bandwidth_bytes_per_s"].get<double>() > 0);
  for (const char* key : {"what", "date", "command", "details"})
    CHECK_MESSAGE(j.contains(key), key);
  CHECK(j["details"]["gemm_n"] == 128);
  CHECK(j["details"]["copy_bytes"] == 4 << 20);
  // Bandwidth is (read + written) bytes over the median copy time.
  CHECK(j["bandwidth_bytes_per_s"].get<double>() ==
        doctest::Approx(2.0 * (4 << 20) / j["details"]["copy"]["median_s"].get<double>())
            .epsilon(1e-9));
  const auto c = dsc::bench::read_ceilings(out.string());
  CHECK(c.peak_flops == j["peak_flops"].get<double>());
}

TEST_CASE("% of roofline follows a hand computation from a fake ceilings file") {
  const fs::path d = temp_dir("roofline");
  const fs::path ceilings = d / "fake.json";
  // Peak 1 GFLOP/s, bandwidth 0.1 GB/s: ridge at 10 FLOP/B, so the tiny normal conv (232,000 FLOP
  // over 17,952 B = 12.9 FLOP/B) is compute-bound and DepSep (56,000 over 28,992 B separate) is
  // memory-bound.
  std::ofstream(ceilings)
      << R"({"device": "fake", "peak_flops": 1e9, "bandwidth_bytes_per_s": 1e8})";
  const double normal_bound = 2 / (kNormalFlops / 1e9);             // images/s, 8,620.7
  const double depsep_bound = 2 / (kDepsepSeparateBytes / 1e8);     // 689.8
  const double depsep_fused_bound = 2 / (kDepsepFusedBytes / 1e8);  // 1,235.2

  for (const bool backward : {false, true}) {
    CAPTURE(backward);
    std::vector<std::string> args = {"layer", "--ceilings", ceilings.string(), "--json",
                                     (d / "r.jsonl").string()};
    if (backward) args.push_back("--backward");
    Run r = bench(tiny(args));
    INFO(r.out, r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("fake.json") != std::string::npos);
    const auto lines = read_jsonl(d / "r.jsonl");
    REQUIRE(lines.size() == 2);
    const double passes = backward ? 3 : 1;  // forward, backward-data, backward-filter
    const json& n = lines[0];
    const json& s = lines[1];
    CHECK(n["direction"] == (backward ? "forward+backward" : "forward"));
    CHECK(n["roofline_bound"] == "compute");
    CHECK(s["roofline_bound"] == "memory");
    CHECK(n["roofline_fraction"].get<double>() ==
          doctest::Approx(n["conv_per_sec"].get<double>() * passes / normal_bound).epsilon(1e-9));
    CHECK(s["roofline_fraction"].get<double>() ==
          doctest::Approx(s["conv_per_sec"].get<double>() * passes / depsep_bound).epsilon(1e-9));
    CHECK(s["roofline_fraction_fused"].get<double>() ==
          doctest::Approx(s["conv_per_sec"].get<double>() * passes / depsep_fused_bound)
              .epsilon(1e-9));
    CHECK(
        n["macs_per_sec"].get<double>() ==
        doctest::Approx(passes * kNormalMacs * n["conv_per_sec"].get<double>() / 2).epsilon(1e-9));
  }
  // The same numbers through the library function, with an exact rate.
  dsc::bench::LayerSpec spec;
  spec.batch = 2;
  spec.channels = spec.filters = 8;
  spec.height = spec.width = 12;
  spec.kind = "depsep";
  const auto rates = dsc::bench::layer_rates(spec, 500.0, dsc::bench::read_ceilings(ceilings));
  CHECK(*rates.roofline_fraction == doctest::Approx(500.0 / depsep_bound).epsilon(1e-12));
  // The fused kind is held to the fused (minimal-traffic) bound.
  spec.kind = "depsep-fused";
  const auto fused = dsc::bench::layer_rates(spec, 500.0, dsc::bench::read_ceilings(ceilings));
  CHECK(*fused.roofline_fraction == doctest::Approx(500.0 / depsep_fused_bound).epsilon(1e-12));
  CHECK(*fused.roofline_fraction_fused == *fused.roofline_fraction);
}

TEST_CASE("an out-of-memory sweep point is recorded as oom and the sweep continues") {
  const fs::path d = temp_dir("oom");
  dsc::bench::BenchHooks hooks;
  int calls = 0;
  hooks.before_point = [&](const dsc::bench::LayerSpec& s) {
    ++calls;
    if (s.channels == 16 && s.kind == "normal") throw std::bad_alloc();
    if (s.channels == 16 && s.kind == "depsep") {
      throw dsc::Error("CUDA out of memory: requested 123 bytes (injected by the test)");
    }
  };
  Run r = bench({"sweep", "--device", "cpu", "--size", "12", "--channels-list", "8,16,32",
                 "--min-time", "0", "--repeats", "1", "--csv", (d / "o.csv").string(), "--json",
                 (d / "o.jsonl").string(), "--no-ceilings"},
                hooks);
  INFO(r.out, r.err);
  REQUIRE(r.rc == 0);
  CHECK(calls == 6);
  CHECK(r.out.find("2 point(s) ran out of memory") != std::string::npos);
  const auto rows = read_csv(d / "o.csv");
  REQUIRE(rows.size() == 6);
  for (const auto& row : rows) {
    const bool oom = row.at("channels") == "16";
    CHECK(row.at("status") == (oom ? "oom" : "ok"));
    CHECK(row.at("conv_per_sec").empty() == oom);
  }
  CHECK(number(rows[4], "conv_per_sec") > 0);  // C = 32 ran after the failures
  const auto lines = read_jsonl(d / "o.jsonl");
  REQUIRE(lines.size() == 6);
  CHECK(lines[3]["status"] == "oom");
  CHECK(lines[3]["conv_per_sec"].is_null());
  CHECK(lines[3]["error"].get<std::string>().find("injected") != std::string::npos);

  // Any other error stops the sweep with exit code 1.
  hooks.before_point = [](const dsc::bench::LayerSpec& s) {
    if (s.channels == 16) throw dsc::Error("conv2d: something else broke");
  };
  Run bad = bench({"sweep", "--device", "cpu", "--size", "12", "--channels-list", "8,16,32",
                   "--min-time", "0", "--repeats", "1", "--no-ceilings"},
                  hooks);
  CHECK(bad.rc == 1);
  CHECK(bad.err.find("something else broke") != std::string::npos);
}

TEST_CASE("the timing loop warms up untimed, then times repeats lasting at least min_time") {
  using dsc::bench::TimingOptions;
  int calls = 0;
  auto count = [&] { ++calls; };
  auto nosync = [] {};
  // min_time 0: one warm-up iteration even with warmup = 0, then one iteration per repeat.
  TimingOptions o;
  o.min_time = 0;
  o.repeats = 3;
  o.warmup = 0;
  const auto s0 = dsc::bench::measure(count, nosync, o);
  CHECK(calls == 1 + 3);
  CHECK(s0.iterations == 3);
  CHECK(s0.per_iter_s.size() == 3);

  // A callable sleeping 2 ms times at least 2 ms per iteration; every repeat lasts >= min_time
  // and is made of whole chunks, each followed by a sync.
  int syncs = 0, sleeps = 0;
  auto sleepy = [&] {
    ++sleeps;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  o.min_time = 0.02;
  o.repeats = 3;
  o.warmup = 1;
  const int64_t chunk = dsc::bench::warm_up(sleepy, nosync, o);
  CHECK(chunk >= 1);
  CHECK(chunk <= 1);  // 2 ms already exceeds min_time / 10
  const int warm_calls = sleeps;
  CHECK(warm_calls >= 1);
  const auto s = dsc::bench::time_repeats(
      sleepy, [&] { ++syncs; }, chunk, o.repeats, o.min_time);
  CHECK(sleeps - warm_calls == s.iterations);  // only the timed iterations counted
  CHECK(s.median_s >= 0.002);
  CHECK(s.min_s <= s.median_s);
  CHECK(s.max_s >= s.median_s);
  REQUIRE(s.repeat_s.size() == 3);
  for (double r : s.repeat_s) CHECK(r >= o.min_time);
  CHECK(s.iterations >= 3);  // at least one chunk per repeat (more on an idle machine)
  double timed = 0;
  for (double r : s.repeat_s) timed += r;
  CHECK(timed >= 0.002 * double(s.iterations));  // every iteration slept 2 ms inside a repeat
  CHECK(syncs == 3 + s.iterations / chunk);      // one before each repeat, one after each chunk
  CHECK(dsc::bench::median({3, 1, 2}) == 2);
  CHECK(dsc::bench::median({4, 1, 2, 3}) == 2.5);
}

TEST_CASE("kernel names follow the backends' dispatch rules") {
  using dsc::bench::kernels_used;
  dsc::bench::LayerSpec s;
  s.device = dsc::Device::CPU;
  s.channels = s.filters = 128;
  s.height = s.width = 56;
  s.kind = "normal";
  const std::string conv3 = kernels_used(s);
  CHECK((conv3 == "winograd F(4x4,3x3)" || conv3 == "im2col+gemm"));
  s.kernel = 5;
  CHECK(kernels_used(s) == "im2col+gemm");
  s.kernel = 3;
  s.kind = "depsep";
  s.channels = s.filters = 8;
  CHECK(kernels_used(s) == "depthwise stencil + pointwise rows (C < 16)");
  s.channels = s.filters = 128;
  s.padding = "same";  // 56 x 56 = 3136 = 98 x 32 pixels for the pointwise part
  const std::string same = kernels_used(s);
  CHECK(same.find("depthwise stencil + pointwise gemm") == 0);
#ifdef DSC_CPU_MICRO_KERNEL  // built for this machine: AVX-512 or AVX2 + FMA
  CHECK(same == std::string("depthwise stencil + pointwise gemm (") + dsc::cpu::micro::isa() +
                    " micro-kernel)");
#else
  CHECK(same == "depthwise stencil + pointwise gemm (OpenBLAS)");
#endif
  s.padding = "valid";  // 54 x 54 = 2916 pixels: not a multiple of 32, OpenBLAS
  CHECK(kernels_used(s) == "depthwise stencil + pointwise gemm (OpenBLAS)");
  s.kind = "depsep-fused";
  CHECK(kernels_used(s) ==
        "fused per image: depthwise stencil into a cached buffer + pointwise gemm (OpenBLAS)");
  s.device = dsc::Device::CUDA;
  CHECK(kernels_used(s).find("dsc fused DepSep kernel") == 0);
  s.backward = true;  // f16, K <= 128: the fused backward; f32 or K > 128: composed
  s.dtype = dsc::DType::F16;
  CHECK(kernels_used(s).find("bwd: dsc fused DepSep backward kernel") != std::string::npos);
  CHECK(kernels_used(s).find("dx and dW in one pass") != std::string::npos);
  s.filters = 256;
  CHECK(kernels_used(s).find("bwd: depthwise recomputed, dsc depthwise kernel") !=
        std::string::npos);
  s.filters = 128;
  s.dtype = dsc::DType::F32;
  CHECK(kernels_used(s).find("bwd: depthwise recomputed, dsc depthwise kernel") !=
        std::string::npos);
  s.backward = false;
  s.device = dsc::Device::CPU;
  s.kind = "depsep";

  s.device = dsc::Device::CUDA;
  s.dtype = dsc::DType::F16;
  {
    const dsc::ScopedKernelOptions defaults(dsc::KernelOptions{});
    CHECK(kernels_used(s).find("dsc depthwise kernel") == 0);
    CHECK(kernels_used(s).find("pointwise cuBLAS strided-batched GEMM") != std::string::npos);
  }
  {
    dsc::KernelOptions o;
    o.depthwise = dsc::KernelOptions::Depthwise::Cudnn;
    o.pointwise = dsc::KernelOptions::Pointwise::Cudnn;
    const dsc::ScopedKernelOptions cudnn(o);
    CHECK(kernels_used(s).find("cuDNN grouped (--depthwise cudnn)") == 0);
    CHECK(kernels_used(s).find("(--pointwise cudnn)") != std::string::npos);
  }
  s.kind = "normal";
  CHECK(kernels_used(s).find("cuDNN") == 0);
}

TEST_CASE("CSV fields with commas and quotes are quoted") {
  CHECK(dsc::bench::csv_escape("plain") == "plain");
  CHECK(dsc::bench::csv_escape("winograd F(4x4,3x3)") == "\"winograd F(4x4,3x3)\"");
  CHECK(dsc::bench::csv_escape("say \"hi\"") == "\"say \"\"hi\"\"\"");
  dsc::bench::BenchRow row;
  row.kind = "normal";
  row.kernels = "a,b";
  row.command = "bench layer --batch 1,16";
  const auto fields = csv_fields(dsc::bench::csv_line(row));
  CHECK(fields.size() == dsc::bench::csv_columns().size());
  CHECK(fields[21] == "a,b");
  CHECK(dsc::bench::csv_columns()[21] == "kernels");
}

TEST_CASE("out-of-memory errors are told apart from other errors") {
  using dsc::bench::is_out_of_memory;
  CHECK(is_out_of_memory(std::bad_alloc()));
  CHECK(is_out_of_memory(dsc::Error("CUDA out of memory: requested 1 bytes")));
  CHECK(is_out_of_memory(dsc::Error("out of host memory allocating 8 bytes")));
  CHECK(is_out_of_memory(dsc::Error("cudnnConvolutionForward: CUDNN_STATUS_ALLOC_FAILED")));
  CHECK_FALSE(is_out_of_memory(dsc::Error("conv2d: kernel 3x3 larger than the padded input")));
  CHECK_FALSE(is_out_of_memory(std::runtime_error("out of memory")));  // not a dsc::Error
}

TEST_CASE("other processes' CPU load is measured apart from this process's own work") {
  const auto a = dsc::bench::cpu_times_now();
  REQUIRE(a.valid);  // Linux /proc
  CHECK(a.cpus >= 1);
  CHECK(a.total_s >= a.busy_s);
  // Spin this thread for 50 ms: its own time must not count as other load.
  const auto t0 = std::chrono::steady_clock::now();
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50)) sink = sink + 1;
  const auto b = dsc::bench::cpu_times_now();
  CHECK(b.self_s >= a.self_s);
  const double other = dsc::bench::other_cpu_load(a, b);
  CHECK(((other >= 0 && other <= b.cpus) || other == -1));
  CHECK(dsc::bench::other_cpu_load(dsc::bench::CpuTimes{}, b) == -1);
  // Hand-made snapshots: 2 CPUs, 1 s of wall time (2 CPU-seconds), 1.5 s busy of which 0.4 s ours.
  dsc::bench::CpuTimes x, y;
  x.valid = y.valid = true;
  x.cpus = y.cpus = 2;
  y.total_s = 2.0;
  y.busy_s = 1.5;
  y.self_s = 0.4;
  CHECK(dsc::bench::other_cpu_load(x, y) == doctest::Approx(1.1));
}
