// JSON-lines / CSV run logs and the run comparison table (see run_log.h).
// Tested in tests/apps/test_train_cli.cpp.
#include "apps/lib/run_log.h"

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "core/format.h"

namespace dsc {
namespace {
void open_or_throw(std::ofstream& f, const std::string& path, const char* what) {
  f.open(path, std::ios::out | std::ios::trunc);
  DSC_CHECK(f.good(), "cannot write ", what, " '", path, "': ", std::strerror(errno),
            " (expected a writable file path)");
}

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}
}  // namespace

RunLog::RunLog(const std::string& jsonl_path, const std::string& csv_path) {
  if (!jsonl_path.empty()) open_or_throw(jsonl_, jsonl_path, "log file");
  if (!csv_path.empty()) open_or_throw(csv_, csv_path, "CSV file");
}

void RunLog::write(const nlohmann::json& record) {
  if (jsonl_.is_open()) {
    jsonl_ << record.dump() + "\n";
    jsonl_.flush();
  }
  if (csv_.is_open() && record.value("type", "") == "epoch") {
    std::string line;
    if (csv_columns_.empty()) {
      for (auto it = record.begin(); it != record.end(); ++it) {
        if (it.key() == "type") continue;
        csv_columns_.push_back(it.key());
        line += (line.empty() ? "" : ",") + it.key();
      }
      csv_ << line + "\n";
      line.clear();
    }
    for (size_t i = 0; i < csv_columns_.size(); ++i) {
      line += (i ? "," : "") + csv_cell(record.value(csv_columns_[i], nlohmann::json()));
    }
    csv_ << line + "\n";
    csv_.flush();
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
}  // namespace

std::string compare_runs(const std::vector<std::string>& paths) {
  std::ostringstream os;
  os << "| run | framework | model | device | precision | batch | params | epochs | peak img/s | "
        "median img/s | train acc | test acc |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const std::string& path : paths) {
    nlohmann::json header, summary;
    int epochs = 0;
    for (const nlohmann::json& r : read_run_log(path)) {
      const std::string type = r.value("type", "");
      if (type == "header") header = r;
      if (type == "summary") summary = r;
      if (type == "epoch") ++epochs;
    }
    DSC_CHECK(!header.is_null(), "run log '", path, "' has no header line");
    auto get = [&](const char* key) {
      if (summary.contains(key)) return summary[key];
      return header.contains(key) ? header[key] : nlohmann::json();
    };
    std::string name = path.substr(path.find_last_of('/') + 1);
    os << "| " << name << " | " << header.value("framework", "ours") << " | "
       << header.value("model", "?") << " | " << header.value("device", "?") << " | "
       << header.value("precision", "?") << " | " << fmt_num(get("batch"), 0, false) << " | "
       << fmt_num(get("params"), 0, true) << " | " << epochs << " | "
       << fmt_num(get("peak_images_per_sec"), 0, true) << " | "
       << fmt_num(get("median_images_per_sec"), 0, true) << " | " << fmt_pct(get("train_acc"))
       << " | " << fmt_pct(get("test_acc")) << " |"
       << (summary.is_null() ? " (unfinished)" : "") << "\n";
  }
  return os.str();
}

}  // namespace dsc
