// CIFAR-10 entry points: format detection (load_cifar10), the reader of the official binary
// release, and resolve_data_path. Binary layout: files of 3073-byte records, 1 label byte then
// 3072 pixel bytes (R, G, B planes of 32x32, row-major) -- copied verbatim into Dataset.pixels.
// Tested in tests/data/test_binary.cpp (hand-written records, every error case),
// tests/data/test_real_cifar10.cpp (the packed real data set reads back byte-identical) and
// tests/data/test_dataset.cpp (resolve_data_path's search order and error); the in-memory parsers
// are fuzzed by tests/fuzz/fuzz_cifar10.cpp.
#include "data/cifar10.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "data/io_util.h"

namespace dsc::data {
namespace fs = std::filesystem;

namespace {

const char kExpectedLayout[] =
    "expected a folder holding data_batch_1.bin..data_batch_5.bin and test_batch.bin, a folder "
    "with a cifar-10-batches-bin/ subfolder, or an image folder with train/ and test/ holding "
    "one sub-folder of .png/.jpg images per class";

// Class names from batches.meta.txt, else CIFAR-10's.
std::vector<std::string> read_class_names(const fs::path& folder) {
  const fs::path meta = folder / "batches.meta.txt";
  if (!detail::is_regular_file(meta)) return cifar10_class_names();
  std::ifstream in(meta, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw DataError(meta.string() + ": cannot read it");
  return parse_class_names(text.str(), meta.string());
}

// Appends the records of one .bin file to `out`.
void append_bin_file(const fs::path& file, Dataset& out) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) {
    throw DataError(file.string() + ": cannot open it for reading: " + std::strerror(errno));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  std::error_code ec;
  const auto size = static_cast<int64_t>(fs::file_size(file, ec));
  if (ec) throw DataError(file.string() + ": cannot read its size: " + ec.message());
  if (size % kRecordBytes != 0) {
    // Checked before reading, so a huge file of the wrong size is not read in first.
    append_cifar10_records(nullptr, static_cast<size_t>(size), file.string(), out);
  }
  std::vector<uint8_t> buffer(size);
  if (size > 0 && std::fread(buffer.data(), 1, size, f) != static_cast<size_t>(size)) {
    throw DataError(file.string() + ": short read, expected " + std::to_string(size) + " bytes");
  }
  append_cifar10_records(buffer.data(), buffer.size(), file.string(), out);
}

bool has_binary_files(const fs::path& folder) {
  return detail::is_regular_file(folder / "data_batch_1.bin") ||
         detail::is_regular_file(folder / "test_batch.bin");
}

Dataset read_binary_folder(const std::string& folder_name, Split split) {
  const fs::path folder(folder_name);
  if (!detail::is_directory(folder)) {
    throw DataError("CIFAR-10 binary folder not found: " + folder_name);
  }
  std::vector<fs::path> files;
  if (split == Split::kTest) {
    if (!detail::is_regular_file(folder / "test_batch.bin")) {
      throw DataError("missing test split: " + (folder / "test_batch.bin").string() +
                      " not found; expected test_batch.bin next to data_batch_*.bin; " +
                      folder_name + " holds: " + detail::list_folder(folder));
    }
    files.push_back(folder / "test_batch.bin");
  } else {
    // data_batch_1.bin, data_batch_2.bin, ... without gaps (five in the official release).
    const std::regex pattern("data_batch_([0-9]+)\\.bin");
    int highest = 0;
    for (const auto& entry : fs::directory_iterator(folder)) {
      std::smatch m;
      const std::string name = entry.path().filename().string();
      if (std::regex_match(name, m, pattern)) highest = std::max(highest, std::stoi(m[1].str()));
    }
    for (int k = 1; k <= highest; ++k) {
      const fs::path file = folder / ("data_batch_" + std::to_string(k) + ".bin");
      if (!detail::is_regular_file(file)) {
        throw DataError("missing train file " + file.string() + ": data_batch_1.bin.." +
                        "data_batch_" + std::to_string(highest) + ".bin expected without gaps; " +
                        folder_name + " holds: " + detail::list_folder(folder));
      }
      files.push_back(file);
    }
    if (files.empty()) {
      throw DataError("missing train split: no data_batch_1.bin in " + folder_name +
                      "; expected data_batch_1.bin..data_batch_5.bin; it holds: " +
                      detail::list_folder(folder));
    }
  }
  Dataset out;
  out.split = split;
  out.source = folder_name;
  out.format = "cifar10-binary";
  out.class_names = read_class_names(folder);
  for (const auto& file : files) append_bin_file(file, out);
  if (out.n == 0) {
    throw DataError("no images in the " + std::string(split_name(split)) + " split of " +
                    folder_name + ": its .bin files are empty");
  }
  return out;
}

Dataset load_any(const std::string& path, Split split) {
  const fs::path root(path);
  std::error_code ec;
  if (!fs::exists(root, ec)) {
    std::string message = "CIFAR-10 data not found: " + path + " does not exist; ";
    const fs::path parent = fs::absolute(root, ec).parent_path();
    if (detail::is_directory(parent)) {
      message += "its parent " + parent.string() + " holds: " + detail::list_folder(parent) + "; ";
    }
    throw DataError(message + kExpectedLayout);
  }
  if (!detail::is_directory(root)) {
    throw DataError("CIFAR-10 path " + path + " is not a folder; " + kExpectedLayout);
  }
  if (has_binary_files(root)) return read_cifar10_binary(path, split);
  if (has_binary_files(root / "cifar-10-batches-bin")) {
    return read_cifar10_binary((root / "cifar-10-batches-bin").string(), split);
  }
  if (detail::is_directory(root / "train") || detail::is_directory(root / "test")) {
    return read_image_folder(path, split);
  }
  throw DataError("no CIFAR-10 data in " + path + ": it holds " + detail::list_folder(root) + "; " +
                  kExpectedLayout);
}

}  // namespace

std::vector<std::string> parse_class_names(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(first, last - first + 1));
  }
  if (names.empty() || names.size() > 256) {
    throw DataError(name + ": lists " + std::to_string(names.size()) +
                    " class names, expected 1..256 names, one per line");
  }
  return names;
}

void append_cifar10_records(const uint8_t* bytes, size_t size, const std::string& name,
                            Dataset& out) {
  if (size % kRecordBytes != 0) {
    throw DataError(name + ": size " + std::to_string(size) +
                    " bytes is not a multiple of the 3073-byte CIFAR-10 record (1 label byte + "
                    "3072 pixel bytes); expected a multiple of 3073, e.g. 30730000 for 10,000 "
                    "records, got " +
                    std::to_string(size / kRecordBytes) + " records and " +
                    std::to_string(size % kRecordBytes) + " bytes left over");
  }
  const int64_t records = static_cast<int64_t>(size / kRecordBytes);
  for (int64_t r = 0; r < records; ++r) {  // every label first, so `out` is unchanged on error
    const uint8_t label = bytes[r * kRecordBytes];
    if (label >= out.class_names.size()) {
      throw DataError(name + ": record " + std::to_string(r) + " (byte offset " +
                      std::to_string(r * kRecordBytes) + ") has label " + std::to_string(label) +
                      ", expected 0.." + std::to_string(int64_t(out.class_names.size()) - 1));
    }
  }
  const int64_t first = out.n;
  out.n += records;
  out.pixels.resize(out.n * kImageBytes);
  out.labels.resize(out.n);
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* record = bytes + r * kRecordBytes;
    out.labels[first + r] = record[0];
    std::copy_n(record + 1, kImageBytes, out.image(first + r));
  }
}

Dataset read_cifar10_binary(const std::string& folder_name, Split split) {
  return detail::with_data_errors([&] { return read_binary_folder(folder_name, split); });
}

Dataset load_cifar10(const std::string& path, Split split) {
  return detail::with_data_errors([&] { return load_any(path, split); });
}

std::string resolve_data_path(const std::string& flag_value) {
  std::error_code ec;
  if (!flag_value.empty()) {
    if (!fs::exists(flag_value, ec)) {
      throw DataError("data path " + flag_value + " (given on the command line) does not exist");
    }
    return flag_value;
  }
  std::vector<std::string> candidates;
  std::string looked;
  if (const char* env = std::getenv("CIFAR10_DIR"); env && *env) {
    candidates.push_back(env);
  } else {
    looked = "$CIFAR10_DIR (not set)";
  }
  candidates.push_back("data/cifar10");
  candidates.push_back("../shared/cifar10");
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (fs::exists(candidates[i], ec)) return candidates[i];
    if (i == 0 && candidates.size() == 3) {
      spdlog::warn("$CIFAR10_DIR={} does not exist; trying the default places", candidates[i]);
    }
    if (!looked.empty()) looked += ", ";
    looked += (i == 0 && candidates.size() == 3 ? "$CIFAR10_DIR=" : "") + candidates[i];
  }
  throw DataError("no CIFAR-10 data found; looked in " + looked + " (relative to the current " +
                  "directory " + fs::current_path(ec).string() +
                  "); pass the path explicitly, set CIFAR10_DIR, or run " +
                  "scripts/download_cifar10.sh");
}

}  // namespace dsc::data
