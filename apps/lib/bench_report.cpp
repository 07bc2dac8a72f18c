// Output of `bench` rows (see bench_report.h): JSON lines, CSV with a fixed header (quoted where a
// field holds a comma, quote or newline), and the terminal table. Numbers keep 7 significant
// digits in files. Tested in tests/apps/test_bench.cpp (parsed back with nlohmann::json and a
// small CSV reader).
#include "apps/lib/bench_report.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <utility>

#include "core/error.h"

namespace dsc::bench {
namespace {

using json = nlohmann::ordered_json;

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

std::string opt_num(const std::optional<double>& v) { return v ? num(*v) : std::string(); }

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(); }

// One accessor per column: (name, CSV cell). The JSON object uses the same names and order.
using Cell = std::function<std::string(const BenchRow&)>;
const std::vector<std::pair<std::string, Cell>>& cells() {
  static const std::vector<std::pair<std::string, Cell>> c = {
      {"kind", [](const BenchRow& r) { return r.kind; }},
      {"device", [](const BenchRow& r) { return r.device; }},
      {"dtype", [](const BenchRow& r) { return r.dtype; }},
      {"batch", [](const BenchRow& r) { return std::to_string(r.batch); }},
      {"channels", [](const BenchRow& r) { return std::to_string(r.channels); }},
      {"filters", [](const BenchRow& r) { return std::to_string(r.filters); }},
      {"height", [](const BenchRow& r) { return std::to_string(r.height); }},
      {"width", [](const BenchRow& r) { return std::to_string(r.width); }},
      {"kernel", [](const BenchRow& r) { return std::to_string(r.kernel); }},
      {"padding", [](const BenchRow& r) { return r.padding; }},
      {"direction", [](const BenchRow& r) { return r.direction; }},
      {"conv_per_sec", [](const BenchRow& r) { return opt_num(r.conv_per_sec); }},
      {"conv_per_sec_min", [](const BenchRow& r) { return opt_num(r.conv_per_sec_min); }},
      {"conv_per_sec_max", [](const BenchRow& r) { return opt_num(r.conv_per_sec_max); }},
      {"seconds_per_batch", [](const BenchRow& r) { return opt_num(r.seconds_per_batch); }},
      {"macs_per_sec", [](const BenchRow& r) { return opt_num(r.macs_per_sec); }},
      {"tflops", [](const BenchRow& r) { return opt_num(r.tflops); }},
      {"tflops_mac", [](const BenchRow& r) { return opt_num(r.tflops_mac); }},
      {"bytes_per_sec_min_traffic",
       [](const BenchRow& r) { return opt_num(r.bytes_per_sec_min_traffic); }},
      {"sm_util", [](const BenchRow& r) { return opt_num(r.sm_util); }},
      {"mem_util", [](const BenchRow& r) { return opt_num(r.mem_util); }},
      {"kernels", [](const BenchRow& r) { return r.kernels; }},
      {"status", [](const BenchRow& r) { return r.status; }},
      {"date", [](const BenchRow& r) { return r.date; }},
      {"command", [](const BenchRow& r) { return r.command; }},
      // extras
      {"roofline_fraction", [](const BenchRow& r) { return opt_num(r.roofline_fraction); }},
      {"roofline_fraction_fused",
       [](const BenchRow& r) { return opt_num(r.roofline_fraction_fused); }},
      {"roofline_bound", [](const BenchRow& r) { return r.roofline_bound; }},
      {"bytes_per_sec_unfused", [](const BenchRow& r) { return opt_num(r.bytes_per_sec_unfused); }},
      {"threads", [](const BenchRow& r) { return std::to_string(r.threads); }},
      {"repeats", [](const BenchRow& r) { return std::to_string(r.repeats); }},
      {"iterations", [](const BenchRow& r) { return std::to_string(r.iterations); }},
      {"min_time", [](const BenchRow& r) { return num(r.min_time); }},
      {"load_avg", [](const BenchRow& r) { return r.load_avg < 0 ? "" : num(r.load_avg); }},
      {"other_cpu_load",
       [](const BenchRow& r) { return r.other_load < 0 ? "" : num(r.other_load); }},
      {"error", [](const BenchRow& r) { return r.error; }},
  };
  return c;
}

std::string rate(double v) {  // conv/s and similar: integers above 100, 3 significant below
  char buf[32];
  if (std::fabs(v) >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

std::string fmt(const std::optional<double>& v, const char* f, double scale = 1.0) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, f, *v * scale);
  return buf;
}

}  // namespace

const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, cell] : cells()) n.push_back(name);
    return n;
  }();
  return names;
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string csv_header() {
  std::string line;
  for (const auto& name : csv_columns()) line += (line.empty() ? "" : ",") + name;
  return line;
}

std::string csv_line(const BenchRow& r) {
  std::string line;
  bool first = true;
  for (const auto& [name, cell] : cells()) {
    if (!first) line += ',';
    first = false;
    line += csv_escape(cell(r));
  }
  return line;
}

json row_json(const BenchRow& r) {
  json j;
  j["kind"] = r.kind;
  j["device"] = r.device;
  j["dtype"] = r.dtype;
  j["batch"] = r.batch;
  j["channels"] = r.channels;
  j["filters"] = r.filters;
  j["height"] = r.height;
  j["width"] = r.width;
  j["kernel"] = r.kernel;
  j["padding"] = r.padding;
  j["direction"] = r.direction;
  j["conv_per_sec"] = opt_json(r.conv_per_sec);
  j["conv_per_sec_min"] = opt_json(r.conv_per_sec_min);
  j["conv_per_sec_max"] = opt_json(r.conv_per_sec_max);
  j["seconds_per_batch"] = opt_json(r.seconds_per_batch);
  j["macs_per_sec"] = opt_json(r.macs_per_sec);
  j["tflops"] = opt_json(r.tflops);
  j["tflops_mac"] = opt_json(r.tflops_mac);
  j["bytes_per_sec_min_traffic"] = opt_json(r.bytes_per_sec_min_traffic);
  j["sm_util"] = opt_json(r.sm_util);
  j["mem_util"] = opt_json(r.mem_util);
  j["kernels"] = r.kernels;
  j["status"] = r.status;
  j["date"] = r.date;
  j["command"] = r.command;
  if (r.roofline_fraction) j["roofline_fraction"] = *r.roofline_fraction;
  if (r.roofline_fraction_fused) j["roofline_fraction_fused"] = *r.roofline_fraction_fused;
  if (!r.roofline_bound.empty()) j["roofline_bound"] = r.roofline_bound;
  if (r.bytes_per_sec_unfused) j["bytes_per_sec_unfused"] = *r.bytes_per_sec_unfused;
  j["threads"] = r.threads;
  j["repeats"] = r.repeats;
  j["iterations"] = r.iterations;
  j["min_time"] = r.min_time;
  j["load_avg"] = r.load_avg < 0 ? json() : json(r.load_avg);
  j["other_cpu_load"] = r.other_load < 0 ? json() : json(r.other_load);
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

RowWriter::RowWriter(const std::string& json_path, const std::string& csv_path) {
  if (!json_path.empty()) {
    json_.open(json_path, std::ios::trunc);
    DSC_CHECK(json_.good(), "--json: cannot write '", json_path, "'");
  }
  if (!csv_path.empty()) {
    csv_.open(csv_path, std::ios::trunc);
    DSC_CHECK(csv_.good(), "--csv: cannot write '", csv_path, "'");
    csv_ << csv_header() << "\n" << std::flush;
  }
}

void RowWriter::write(const BenchRow& r) {
  if (json_.is_open()) json_ << row_json(r).dump() << "\n" << std::flush;
  if (csv_.is_open()) csv_ << csv_line(r) << "\n" << std::flush;
}

std::string table_header() {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%-7s %5s %5s %5s %10s %21s %10s %8s %8s %9s %9s %5s %5s %7s %5s  %s", "kind",
                "batch", "C", "K", "conv/s", "(min - max)", "ms/batch", "TFLOP/s", "\"TFLOPS\"",
                "GB/s min", "GB/s unf", "SM%", "mem%", "%roof", "other", "kernels");
  return buf;
}

std::string table_line(const BenchRow& r) {
  char buf[512];
  if (r.status != "ok") {
    std::snprintf(buf, sizeof buf, "%-7s %5lld %5lld %5lld %10s  %s", r.kind.c_str(),
                  (long long)r.batch, (long long)r.channels, (long long)r.filters, r.status.c_str(),
                  r.error.c_str());
    return buf;
  }
  char spread[64];
  std::snprintf(spread, sizeof spread, "(%s - %s)", rate(*r.conv_per_sec_min).c_str(),
                rate(*r.conv_per_sec_max).c_str());
  const std::string roof = fmt(r.roofline_fraction, "%.1f", 100.0);
  const std::string other =
      fmt(r.other_load < 0 ? std::nullopt : std::optional<double>(r.other_load), "%.2f");
  std::snprintf(
      buf, sizeof buf, "%-7s %5lld %5lld %5lld %10s %21s %10s %8s %8s %9s %9s %5s %5s %7s %5s  %s",
      r.kind.c_str(), (long long)r.batch, (long long)r.channels, (long long)r.filters,
      rate(*r.conv_per_sec).c_str(), spread, fmt(r.seconds_per_batch, "%.4g", 1e3).c_str(),
      fmt(r.tflops, "%.3g").c_str(), fmt(r.tflops_mac, "%.3g").c_str(),
      fmt(r.bytes_per_sec_min_traffic, "%.1f", 1e-9).c_str(),
      r.bytes_per_sec_unfused ? fmt(r.bytes_per_sec_unfused, "%.1f", 1e-9).c_str() : "-",
      fmt(r.sm_util, "%.1f").c_str(), fmt(r.mem_util, "%.1f").c_str(), roof.c_str(), other.c_str(),
      r.kernels.c_str());
  return buf;
}

}  // namespace dsc::bench
