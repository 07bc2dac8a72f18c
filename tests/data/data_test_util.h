// Helpers for the data tests: temporary folders, random data sets whose images carry their own
// index, writers of CIFAR binary records and of PNG image folders, and a spdlog capture.
#pragma once

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace dsc::data::testing {

namespace fs = std::filesystem;

// A fresh empty folder under the system temp folder, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// n images of random pixels (never all zero), label i % num_classes, class names
// "class0".."classK" unless `names` is given. Image i's first two R pixels hold i & 255 and i >> 8,
// so every image is distinct and identifies itself (see image_id).
Dataset random_dataset(int64_t n, int num_classes, uint64_t seed,
                       std::vector<std::string> names = {});
int64_t image_id(const uint8_t* image);

void write_bytes(const fs::path& file, const std::vector<uint8_t>& bytes);
// CIFAR binary records (label byte + 3072 pixels) of images [first, first + count).
std::vector<uint8_t> records(const Dataset& dataset, int64_t first, int64_t count);

// A PNG of w x h pixels with `channels` (1..4) interleaved channels.
void write_png(const fs::path& file, int w, int h, int channels, const std::vector<uint8_t>& hwc);
// A 32x32 RGB PNG of one image in CHW layout.
void write_png_chw(const fs::path& file, const uint8_t* chw);
// Writes `dataset` as root/<split>/<class>/<name>.png; image i is named "img_%05d.png" with
// i's position within its class, so file order within a class equals data set order.
void write_image_folder(const Dataset& dataset, const fs::path& root, Split split);

// The message of the DataError `f` throws, or "<no DataError>".
template <class F>
std::string data_error(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "<no DataError>";
}
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Captures what spdlog's default logger writes while it is alive.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace dsc::data::testing
