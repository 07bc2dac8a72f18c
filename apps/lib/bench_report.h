// One `bench layer` / `bench sweep` result row and its three outputs: a JSON object (one per
// line in --json files), a CSV line under a fixed header (--csv files, read by bench/plot.py
// sweep) and an aligned text table for the terminal. Units: conv_per_sec = images per second (the
// seed's "conv/sec"); seconds_per_batch = median time of one batch; macs_per_sec = multiply-adds
// per second; tflops = 10^12 FLOP/s counting 2 FLOPs per multiply-add; tflops_mac = 10^12
// multiply-adds per second (the seed's "TFLOPS"); bytes_per_sec_* = modelled bytes (seed's minimal
// traffic, or unfused DepSep) per second; sm_util / mem_util = NVML percent (0-100);
// roofline_fraction = measured conv/sec over the roofline bound (0-1). Missing values are JSON
// null / empty CSV cells. Tested in tests/apps/test_bench.cpp.
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsc::bench {

struct BenchRow {
  // what was run
  std::string kind;    // normal | depsep
  std::string device;  // cpu | cuda
  std::string dtype;   // fp16 | fp32
  int64_t batch = 0, channels = 0, filters = 0, height = 0, width = 0, kernel = 0;
  std::string padding;    // valid | same | P (pixels per side)
  std::string direction;  // forward | forward+backward
  // measured (absent when status != "ok")
  std::optional<double> conv_per_sec, conv_per_sec_min, conv_per_sec_max, seconds_per_batch;
  std::optional<double> macs_per_sec, tflops, tflops_mac;
  std::optional<double> bytes_per_sec_min_traffic, bytes_per_sec_unfused;  // unfused: depsep
  std::optional<double> sm_util, mem_util;
  std::optional<double> roofline_fraction;        // depsep: against the separate-kernels bound
  std::optional<double> roofline_fraction_fused;  // depsep: against the fused (ideal) bound
  std::string roofline_bound;                     // compute | memory | "" when unknown
  std::string kernels;
  std::string status = "ok";  // ok | oom
  std::string error;          // the out-of-memory message when status == "oom"
  // how and when
  int threads = 0;
  int repeats = 0;
  int64_t iterations = 0;  // timed iterations over all repeats
  double min_time = 0;
  double load_avg = -1;    // 1-minute load average when the row finished
  double other_load = -1;  // CPUs busy with other processes during the timed repeats (-1: n/a)
  std::string date, command;
};

// Every CSV column in order: the keys the issue lists, then the extras.
const std::vector<std::string>& csv_columns();
std::string csv_header();
std::string csv_line(const BenchRow& r);
std::string csv_escape(const std::string& s);
// All keys; roofline_fraction(_fused) only when known.
nlohmann::ordered_json row_json(const BenchRow& r);

// Opens (truncates) the --json / --csv files at construction so an unwritable path fails before
// any measurement (dsc::Error naming the flag); each row is written whole and flushed.
class RowWriter {
 public:
  RowWriter(const std::string& json_path, const std::string& csv_path);
  void write(const BenchRow& r);

 private:
  std::ofstream json_, csv_;
};

// The terminal table: one line per row (kind, batch, C/K, conv/s with spread, ms/batch, TFLOP/s
// in both conventions, GB/s, SM/mem %, % of roofline, kernels).
std::string table_header();
std::string table_line(const BenchRow& r);

}  // namespace dsc::bench
