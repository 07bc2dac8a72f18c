// JSON-lines / CSV run logs and the run comparison table (see run_log.h).
// Tested in tests/train/test_train.cpp (logs of real runs, compare's table); the parser and the
// table are fuzzed by tests/fuzz/fuzz_run_log.cpp.
#include "train/run_log.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "core/format.h"

namespace dsc {
namespace {
void open_or_throw(std::ofstream& f, const std::string& path, const char* what, bool append) {
  f.open(path, std::ios::out | (append ? std::ios::app : std::ios::trunc));
  DSC_CHECK(f.good(), "cannot write ", what, " '", path, "': ", std::strerror(errno),
            " (expected a writable file path)");
}

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void check_written(const std::ofstream& f, const std::string& path, const char* what) {
  DSC_CHECK(f.good(), "cannot write ", what, " '", path, "': ", std::strerror(errno),
            " (a full disk or a file size limit?)");
}
}  // namespace

RunLog::RunLog(const std::string& jsonl_path, const std::string& csv_path, bool append)
    : jsonl_path_(jsonl_path), csv_path_(csv_path) {
  if (!jsonl_path.empty()) open_or_throw(jsonl_, jsonl_path, "log file", append);
  if (!csv_path.empty()) {
    // An appended CSV goes on with the columns of its first line.
    if (append) {
      std::ifstream in(csv_path);
      std::string first;
      if (in && std::getline(in, first) && !first.empty()) {
        std::stringstream cols(first);
        for (std::string c; std::getline(cols, c, ',');) csv_columns_.push_back(c);
      }
    }
    open_or_throw(csv_, csv_path, "CSV file", append);
  }
}

void RunLog::write(const nlohmann::json& record) {
  if (jsonl_.is_open()) {
    jsonl_ << record.dump() + "\n";
    jsonl_.flush();
    check_written(jsonl_, jsonl_path_, "log file");
  }
  if (csv_.is_open() && record.value("type", "") == "epoch") {
    std::string line;
    if (csv_columns_.empty()) {
      for (auto it = record.begin(); it != record.end(); ++it) {
        if (it.key() == "type") continue;
        csv_columns_.push_back(it.key());
        if (!line.empty()) line += ',';
        line += it.key();
      }
      csv_ << line + "\n";
      line.clear();
    }
    for (size_t i = 0; i < csv_columns_.size(); ++i) {
      if (i) line += ',';
      line += csv_cell(record.value(csv_columns_[i], nlohmann::json()));
    }
    csv_ << line + "\n";
    csv_.flush();
    check_written(csv_, csv_path_, "CSV file");
  }
}

std::vector<nlohmann::json> read_run_log(const std::string& path) {
  std::ifstream in(path);
  DSC_CHECK(in.good(), "cannot read run log '", path, "': ", std::strerror(errno));
  return parse_run_log(in, path);
}

std::vector<nlohmann::json> parse_run_log(std::istream& in, const std::string& name) {
  std::vector<nlohmann::json> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw Error("run log '" + name + "' line " + std::to_string(lineno) +
                  " is not JSON: " + e.what());
    }
    DSC_CHECK(out.back().is_object(), "run log '", name, "' line ", lineno, " is ",
              out.back().type_name(), ", expected a JSON object (one record per line)");
  }
  DSC_CHECK(!out.empty(), "run log '", name, "' is empty (expected JSON lines written by train)");
  return out;
}

namespace {
std::string fmt_num(const nlohmann::json& v, int decimals, bool thousands) {
  if (!v.is_number()) return "-";
  if (thousands) return with_commas(v.get<double>(), decimals);
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << v.get<double>();
  return os.str();
}
std::string fmt_pct(const nlohmann::json& v) {
  return v.is_number() ? fmt_num(v.get<double>() * 100.0, 1, false) + "%" : "-";
}
// NVML utilisation, already in percent; "n/a" where the run had none (CPU, no NVML).
std::string fmt_util(const nlohmann::json& v) {
  return v.is_number() ? fmt_num(v, 1, false) + "%" : "n/a";
}
}  // namespace

namespace {
// The table reads logs that may come from elsewhere (PyTorch's runs) or be cut short, so a field
// is read without assuming it is there or has the expected type: a missing field, a record that
// is not there (no epoch line yet) or one that is not an object gives null.
nlohmann::json field(const nlohmann::json& record, const char* key) {
  if (!record.is_object()) return nullptr;
  const auto it = record.find(key);
  return it == record.end() ? nlohmann::json() : *it;
}
// A text cell: the string itself, `fallback` for null, the JSON text of any other value.
std::string text_field(const nlohmann::json& record, const char* key, const char* fallback) {
  const nlohmann::json v = field(record, key);
  if (v.is_null()) return fallback;
  return v.is_string() ? v.get<std::string>() : v.dump();
}

struct RunRow {
  nlohmann::json header, summary, last_epoch;
  int epochs = 0;
  nlohmann::json get(const char* key) const {
    const nlohmann::json v = field(summary, key);
    return v.is_null() ? field(header, key) : v;
  }
};

RunRow run_row(const RunRecords& run) {
  RunRow row;
  for (const nlohmann::json& r : run.records) {
    const std::string type = text_field(r, "type", "");
    if (type == "header") row.header = r;
    if (type == "summary") row.summary = r;
    if (type == "epoch") ++row.epochs, row.last_epoch = r;
  }
  DSC_CHECK(!row.header.is_null(), "run log '", run.name, "' has no header line");
  return row;
}

// "mean ± sd" of the finite numbers in `values` (sample standard deviation), scaled by `scale`.
std::string mean_sd(const std::vector<double>& values, double scale, int decimals,
                    const char* unit) {
  if (values.empty()) return "-";
  double mean = 0, ss = 0;
  for (double v : values) mean += v;
  mean /= double(values.size());
  for (double v : values) ss += (v - mean) * (v - mean);
  const double sd = values.size() > 1 ? std::sqrt(ss / double(values.size() - 1)) : 0.0;
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << mean * scale << unit << " ± " << sd * scale
     << unit;
  return os.str();
}
// The framework column: ours replayed from a step graph reads "ours (graph)", so that eager and
// graph runs are told apart and never averaged together.
std::string framework_of(const RunRow& row) {
  std::string f = text_field(row.header, "framework", "ours");
  nlohmann::json g = field(row.summary, "graph");
  if (g.is_null()) g = field(row.header, "graph");
  if (g.is_string() && g.get<std::string>() == "on") f += " (graph)";
  return f;
}
// The device column: a data-parallel run reads "cpu x 2 ranks", so that it is never averaged
// with one process's runs.
std::string device_of(const RunRow& row) {
  const std::string d = text_field(row.header, "device", "?");
  const nlohmann::json n = field(row.header, "world_size");
  return n.is_number_integer() && n.get<int64_t>() > 1
             ? d + " x " + std::to_string(n.get<int64_t>()) + " ranks"
             : d;
}
}  // namespace

std::string compare_runs(const std::vector<std::string>& paths) {
  std::vector<RunRecords> runs;
  for (const std::string& path : paths) {
    runs.push_back({path.substr(path.find_last_of('/') + 1), read_run_log(path)});
  }
  return compare_run_records(runs);
}

std::string compare_run_records(const std::vector<RunRecords>& runs) {
  std::ostringstream os;
  os << "| run | framework | model | device | precision | batch | params | epochs | peak img/s | "
        "median img/s | train acc | test acc | SM util | memory util |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<RunRow> rows;
  for (const RunRecords& run : runs) {
    const RunRow& row = rows.emplace_back(run_row(run));
    const nlohmann::json& header = row.header;
    os << "| " << run.name << " | " << framework_of(row) << " | "
       << text_field(header, "model", "?") << " | " << device_of(row) << " | "
       << text_field(header, "precision", "?") << " | " << fmt_num(row.get("batch"), 0, false)
       << " | " << fmt_num(row.get("params"), 0, true) << " | " << row.epochs << " | "
       << fmt_num(row.get("peak_images_per_sec"), 0, true) << " | "
       << fmt_num(row.get("median_images_per_sec"), 0, true) << " | "
       << fmt_pct(row.get("train_acc")) << " | " << fmt_pct(row.get("test_acc")) << " | "
       << fmt_util(row.get("sm_util")) << " | " << fmt_util(row.get("mem_util")) << " |"
       << (row.summary.is_null() ? " (unfinished)" : "") << "\n";
  }

  // Finished runs of the same setup (several seeds, say) summarised as mean ± sd, in the order
  // each setup first appears; printed only when some setup has more than one run.
  std::vector<std::pair<std::string, std::vector<const RunRow*>>> groups;
  for (const RunRow& row : rows) {
    if (row.summary.is_null()) continue;
    const nlohmann::json& h = row.header;
    const std::string key = framework_of(row) + " | " + text_field(h, "model", "?") + " | " +
                            device_of(row) + " | " + text_field(h, "precision", "?") +
                            " | " + fmt_num(row.get("batch"), 0, false) + " | " +
                            std::to_string(row.epochs);
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (it == groups.end()) it = groups.insert(groups.end(), {key, {}});
    it->second.push_back(&row);
  }
  if (std::none_of(groups.begin(), groups.end(),
                   [](const auto& g) { return g.second.size() > 1; })) {
    return os.str();
  }
  os << "\n| framework | model | device | precision | batch | epochs | runs | median img/s | "
        "last-epoch train loss | train acc | test acc |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& group : groups) {
    const std::string& key = group.first;
    const std::vector<const RunRow*>& members = group.second;  // a plain name: lambdas capture it
    auto collect = [&](auto&& value_of) {
      std::vector<double> out;
      for (const RunRow* r : members) {
        const nlohmann::json v = value_of(*r);
        if (v.is_number()) out.push_back(v.get<double>());
      }
      return out;
    };
    os << "| " << key << " | " << members.size() << " | "
       << mean_sd(collect([](const RunRow& r) { return r.get("median_images_per_sec"); }), 1.0, 0,
                  "")
       << " | "
       << mean_sd(collect([](const RunRow& r) { return field(r.last_epoch, "train_loss"); }), 1.0,
                  3, "")
       << " | "
       << mean_sd(collect([](const RunRow& r) { return r.get("train_acc"); }), 100.0, 1, "%")
       << " | "
       << mean_sd(collect([](const RunRow& r) { return r.get("test_acc"); }), 100.0, 1, "%")
       << " |\n";
  }
  return os.str();
}

}  // namespace dsc
