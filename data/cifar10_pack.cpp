// Writer of the official CIFAR-10 binary layout (pack_cifar10): data_batch_1..5.bin holding the
// train split spread as evenly as possible, test_batch.bin, and batches.meta.txt (class names,
// one per line). Records are 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32), exactly
// Dataset.pixels. Files are written under temporary names and renamed at the end.
// Tested in tests/data/test_pack.cpp (round trip of small folders, file sizes, no temporaries
// left on error) and tests/data/test_real_cifar10.cpp (the real data set reads back identical).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "data/cifar10.h"

namespace dsc::data {
namespace fs = std::filesystem;

namespace {

void write_bytes(std::FILE* f, const fs::path& path, const void* data, size_t size) {
  if (size > 0 && std::fwrite(data, 1, size, f) != size) {
    throw DataError(path.string() + ": write failed (disk full?) while writing " +
                    std::to_string(size) + " bytes");
  }
}

// Writes images [first, first + count) of `dataset` as records to `path`.
void write_records(const Dataset& dataset, int64_t first, int64_t count, const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    throw DataError(path.string() + ": cannot create it for writing: " + std::strerror(errno));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  constexpr int64_t kRecordsPerWrite = 1024;
  std::vector<uint8_t> buffer(kRecordsPerWrite * kRecordBytes);
  for (int64_t begin = first; begin < first + count; begin += kRecordsPerWrite) {
    const int64_t end = std::min(first + count, begin + kRecordsPerWrite);
    for (int64_t i = begin; i < end; ++i) {
      uint8_t* record = buffer.data() + (i - begin) * kRecordBytes;
      record[0] = dataset.labels[i];
      std::copy_n(dataset.image(i), kImageBytes, record + 1);
    }
    write_bytes(f, path, buffer.data(), (end - begin) * kRecordBytes);
  }
  if (std::fclose(closer.release()) != 0) {
    throw DataError(path.string() + ": closing it failed (disk full?)");
  }
}

void write_meta(const std::vector<std::string>& class_names, const fs::path& path) {
  std::string text;
  for (const auto& name : class_names) text += name + "\n";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    throw DataError(path.string() + ": cannot create it for writing: " + std::strerror(errno));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  write_bytes(f, path, text.data(), text.size());
  if (std::fclose(closer.release()) != 0) throw DataError(path.string() + ": closing it failed");
}

}  // namespace

int64_t train_file_count(int64_t n, int k) {
  return n / kTrainFiles + (k < n % kTrainFiles ? 1 : 0);
}

void pack_cifar10(const Dataset& train, const Dataset& test, const std::string& folder_name) {
  validate(train);
  validate(test);
  if (train.class_names != test.class_names) {
    throw DataError("cannot pack " + train.source + " and " + test.source +
                    ": the train and test splits have different class names");
  }
  for (const auto& name : train.class_names) {
    if (name.empty() || name.find_first_of("\r\n") != std::string::npos) {
      throw DataError("cannot pack " + train.source + ": class name '" + name +
                      "' is empty or holds a line break; batches.meta.txt has one name a line");
    }
  }
  const fs::path folder(folder_name);
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec || !fs::is_directory(folder)) {
    throw DataError("cannot create the output folder " + folder_name + ": " +
                    (ec ? ec.message() : "a file of that name exists"));
  }
  // (final name, temporary name) of every file, written in this order.
  std::vector<std::pair<fs::path, fs::path>> files;
  auto add = [&](const std::string& name) {
    files.emplace_back(folder / name, folder / (name + ".partial"));
    return files.back().second;
  };
  try {
    int64_t first = 0;
    for (int k = 0; k < kTrainFiles; ++k) {
      const int64_t count = train_file_count(train.n, k);
      write_records(train, first, count, add("data_batch_" + std::to_string(k + 1) + ".bin"));
      first += count;
    }
    write_records(test, 0, test.n, add("test_batch.bin"));
    write_meta(train.class_names, add("batches.meta.txt"));
    for (const auto& [final_name, temporary] : files) {
      fs::rename(temporary, final_name);  // throws filesystem_error on failure
    }
  } catch (const std::exception& e) {
    for (const auto& file : files) fs::remove(file.second, ec);
    if (dynamic_cast<const DataError*>(&e)) throw;
    throw DataError("packing into " + folder_name + " failed: " + e.what());
  }
  spdlog::info("packed {} train + {} test images of {} into {}", train.n, test.n, train.source,
               folder_name);
}

}  // namespace dsc::data
