// Machine-readable run logs: one JSON object per line (a header, one object per epoch, a summary)
// and, on request, a CSV of the epoch rows. Every line is written whole and flushed, so a log
// cut short by an error or Ctrl-C is still valid JSON lines.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dsc {

class RunLog {
 public:
  // Opens (truncates, or with `append` extends: a resumed run) the files now, so an unwritable
  // path fails before any work is done. Empty paths disable that output. Throws dsc::Error
  // naming the file.
  RunLog(const std::string& jsonl_path, const std::string& csv_path, bool append = false);
  // "type": "header" | "epoch" | "summary" | "checkpoint" | "interrupted" | "stopped" | ...
  // Throws dsc::Error naming the file when it cannot be written (a full disk, say).
  void write(const nlohmann::json& record);

 private:
  std::string jsonl_path_, csv_path_;
  std::ofstream jsonl_, csv_;
  std::vector<std::string> csv_columns_;
};

// Reads a JSON-lines run log; throws dsc::Error naming the file and line on malformed input.
std::vector<nlohmann::json> read_run_log(const std::string& path);

// The seed's results table for several runs, as markdown: one row per run with model, device,
// precision, batch, parameters, peak and median images/sec, train and test accuracy, and epochs;
// then, when several finished runs share a setup (framework, model, device, precision, batch,
// epochs; several seeds, say), one row per setup with the mean ± sample sd over its runs.
std::string compare_runs(const std::vector<std::string>& paths);

}  // namespace dsc
