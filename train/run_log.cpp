// JSON-lines / CSV run logs and the run comparison table (see run_log.h).
// Tested in tests/apps/test_train_cli.cpp.
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
  std::vector<nlohmann::json> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw Error("run log '" + path + "' line " + std::to_string(lineno) +
                  " is not JSON: " + e.what());
    }
  }
  DSC_CHECK(!out.empty(), "run log '", path, "' is empty (expected JSON lines written by train)");
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
struct RunRow {
  nlohmann::json header, summary, last_epoch;
  int epochs = 0;
  nlohmann::json get(const char* key) const {
    if (summary.contains(key)) return summary[key];
    return header.contains(key) ? header[key] : nlohmann::json();
  }
};

RunRow read_run_row(const std::string& path) {
  RunRow row;
  for (const nlohmann::json& r : read_run_log(path)) {
    const std::string type = r.value("type", "");
    if (type == "header") row.header = r;
    if (type == "summary") row.summary = r;
    if (type == "epoch") ++row.epochs, row.last_epoch = r;
  }
  DSC_CHECK(!row.header.is_null(), "run log '", path, "' has no header line");
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
  std::string f = row.header.value("framework", "ours");
  const nlohmann::json& src =
      row.summary.is_object() && row.summary.contains("graph") ? row.summary : row.header;
  const nlohmann::json g = src.value("graph", nlohmann::json());
  if (g.is_string() && g.get<std::string>() == "on") f += " (graph)";
  return f;
}
}  // namespace

std::string compare_runs(const std::vector<std::string>& paths) {
  std::ostringstream os;
  os << "| run | framework | model | device | precision | batch | params | epochs | peak img/s | "
        "median img/s | train acc | test acc | SM util | memory util |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<RunRow> rows;
  for (const std::string& path : paths) {
    const RunRow& row = rows.emplace_back(read_run_row(path));
    const nlohmann::json& header = row.header;
    std::string name = path.substr(path.find_last_of('/') + 1);
    os << "| " << name << " | " << framework_of(row) << " | " << header.value("model", "?") << " | "
       << header.value("device", "?") << " | " << header.value("precision", "?") << " | "
       << fmt_num(row.get("batch"), 0, false) << " | " << fmt_num(row.get("params"), 0, true)
       << " | " << row.epochs << " | " << fmt_num(row.get("peak_images_per_sec"), 0, true) << " | "
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
    const std::string key = framework_of(row) + " | " + h.value("model", "?") + " | " +
                            h.value("device", "?") + " | " + h.value("precision", "?") + " | " +
                            fmt_num(row.get("batch"), 0, false) + " | " +
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
  for (const auto& [key, members] : groups) {
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
       << mean_sd(collect([](const RunRow& r) {
                    return r.last_epoch.value("train_loss", nlohmann::json());
                  }),
                  1.0, 3, "")
       << " | "
       << mean_sd(collect([](const RunRow& r) { return r.get("train_acc"); }), 100.0, 1, "%")
       << " | "
       << mean_sd(collect([](const RunRow& r) { return r.get("test_acc"); }), 100.0, 1, "%")
       << " |\n";
  }
  return os.str();
}

}  // namespace dsc
