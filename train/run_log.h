// Machine-readable run logs: one JSON object per line (a header, one object per epoch, a summary)
// and, on request, a CSV of the epoch rows. Every line is written whole and flushed, so a log
// cut short by an error or Ctrl-C is still valid JSON lines.
#pragma once

#include <fstream>
#include <istream>
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
// The parser behind read_run_log, on the log's text in `in` (`name` names it in errors); blank
// lines are skipped. Fuzzed by tests/fuzz/fuzz_run_log.cpp.
std::vector<nlohmann::json> parse_run_log(std::istream& in, const std::string& name);

// One run's log records and the name its table row shows.
struct RunRecords {
  std::string name;
  std::vector<nlohmann::json> records;
};

// The seed's results table for several runs, as markdown: one row per run with model, device,
// precision, batch, parameters, peak and median images/sec, train and test accuracy, and epochs;
// then, when several finished runs share a setup (framework, model, device, precision, batch,
// epochs; several seeds, say), one row per setup with the mean ± sample sd over its runs.
// Each path's run is listed under its file name. Throws dsc::Error naming the run when a log
// cannot be read or has no header line.
std::string compare_runs(const std::vector<std::string>& paths);
// The same table for runs already read (what compare_runs builds after reading the files).
std::string compare_run_records(const std::vector<RunRecords>& runs);

}  // namespace dsc
