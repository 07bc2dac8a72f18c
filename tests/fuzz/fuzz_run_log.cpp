// libFuzzer harness for the JSON-lines run-log reader of the `compare` program (parse_run_log and
// compare_run_records in train/run_log.h), built with ASan + UBSan by scripts/fuzz.sh run_log.
// The bytes are one run log: parse_run_log either returns at least one record or throws
// dsc::Error naming the log; the records, as two runs, then either give compare's table or a
// dsc::Error naming a run. Any other exception (a JSON type error escaping, say), a crash, a leak
// or undefined behaviour is a finding.
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_check.h"
#include "train/run_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::vector<nlohmann::json> records;
  try {
    records = dsc::parse_run_log(in, "fuzz.jsonl");
  } catch (const dsc::Error& e) {
    FUZZ_CHECK(std::strstr(e.what(), "fuzz.jsonl") != nullptr);
    return 0;
  }
  FUZZ_CHECK(!records.empty());
  try {
    // Two runs of the same setup, so the mean ± sd rows are built too.
    const std::string table =
        dsc::compare_run_records({{"a.jsonl", records}, {"b.jsonl", records}});
    FUZZ_CHECK(table.rfind("| run |", 0) == 0);
    FUZZ_CHECK(table.find("| a.jsonl |") != std::string::npos);
    FUZZ_CHECK(table.find("| b.jsonl |") != std::string::npos);
  } catch (const dsc::Error& e) {
    FUZZ_CHECK(std::strstr(e.what(), ".jsonl") != nullptr);
  }
  return 0;
}
