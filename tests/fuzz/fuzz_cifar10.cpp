// libFuzzer harness for the CIFAR-10 binary reader's parsers (data/cifar10.h), built with ASan +
// UBSan by scripts/fuzz.sh cifar10. The bytes are read twice:
//  1. as a .bin file, against CIFAR-10's ten classes: append_cifar10_records either appends
//     exactly size / 3073 records, labels and pixels copied verbatim, or throws DataError (size
//     not a multiple of 3073, or a label above 9) and leaves the data set unchanged;
//  2. as batches.meta.txt: parse_class_names either returns 1..256 trimmed, non-empty names or
//     throws DataError; the bytes are then read as records against those names.
// Any other exception, a crash, a leak or undefined behaviour is a finding.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "data/cifar10.h"
#include "data/dataset.h"
#include "fuzz_check.h"

namespace {

using dsc::data::DataError;
using dsc::data::Dataset;
using dsc::data::kImageBytes;
using dsc::data::kRecordBytes;

// Reads the bytes as records against `names` and checks the result either way.
void check_records(const uint8_t* data, size_t size, const std::vector<std::string>& names) {
  Dataset d;
  d.source = "fuzz";
  d.class_names = names;
  bool valid = size % kRecordBytes == 0;
  for (size_t r = 0; valid && r < size / kRecordBytes; ++r) {
    valid = data[r * kRecordBytes] < names.size();
  }
  try {
    dsc::data::append_cifar10_records(data, size, "fuzz.bin", d);
  } catch (const DataError& e) {
    FUZZ_CHECK(!valid);
    FUZZ_CHECK(std::strstr(e.what(), "fuzz.bin") != nullptr);
    FUZZ_CHECK(d.n == 0 && d.pixels.empty() && d.labels.empty());
    return;
  }
  FUZZ_CHECK(valid);
  FUZZ_CHECK(d.n == static_cast<int64_t>(size / kRecordBytes));
  dsc::data::validate(d);  // throws DataError (a finding here) if an invariant does not hold
  for (int64_t r = 0; r < d.n; ++r) {
    const uint8_t* record = data + r * kRecordBytes;
    FUZZ_CHECK(d.labels[r] == record[0]);
    FUZZ_CHECK(std::memcmp(d.image(r), record + 1, kImageBytes) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_records(data, size, dsc::data::cifar10_class_names());
  std::vector<std::string> names;
  try {
    names = dsc::data::parse_class_names(std::string(reinterpret_cast<const char*>(data), size),
                                         "batches.meta.txt");
  } catch (const DataError& e) {
    FUZZ_CHECK(std::strstr(e.what(), "batches.meta.txt") != nullptr);
    return 0;
  }
  FUZZ_CHECK(!names.empty() && names.size() <= 256);
  for (const std::string& name : names) {
    FUZZ_CHECK(!name.empty() && name.find('\n') == std::string::npos);
    FUZZ_CHECK(std::string_view(" \t\r").find(name.front()) == std::string_view::npos);
    FUZZ_CHECK(std::string_view(" \t\r").find(name.back()) == std::string_view::npos);
  }
  check_records(data, size, names);
  return 0;
}
