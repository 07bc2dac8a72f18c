// Implementation of the data test helpers (data_test_util.h); the one place stb_image_write's
// implementation is compiled. PNGs are written from CHW images by interleaving to HWC.
#include "data_test_util.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

// The one definition of stb_image_write's functions.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

namespace dsc::data::testing {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          ("dsc_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Dataset random_dataset(int64_t n, int num_classes, uint64_t seed, std::vector<std::string> names) {
  Dataset d;
  d.n = n;
  d.pixels.resize(n * kImageBytes);
  d.labels.resize(n);
  std::mt19937_64 rng(seed);
  for (auto& p : d.pixels) p = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < n; ++i) {
    d.labels[i] = static_cast<uint8_t>(i % num_classes);
    d.image(i)[0] = static_cast<uint8_t>(i & 255);
    d.image(i)[1] = static_cast<uint8_t>(i >> 8);
  }
  if (names.empty()) {
    for (int c = 0; c < num_classes; ++c) names.push_back("class" + std::to_string(c));
  }
  d.class_names = names;
  d.source = "random_dataset";
  d.format = "memory";
  return d;
}

int64_t image_id(const uint8_t* image) { return image[0] | (image[1] << 8); }

void write_bytes(const fs::path& file, const std::vector<uint8_t>& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::vector<uint8_t> records(const Dataset& dataset, int64_t first, int64_t count) {
  std::vector<uint8_t> out;
  for (int64_t i = first; i < first + count; ++i) {
    out.push_back(dataset.labels[i]);
    out.insert(out.end(), dataset.image(i), dataset.image(i) + kImageBytes);
  }
  return out;
}

void write_png(const fs::path& file, int w, int h, int channels, const std::vector<uint8_t>& hwc) {
  fs::create_directories(file.parent_path());
  if (!stbi_write_png(file.c_str(), w, h, channels, hwc.data(), w * channels)) {
    throw std::runtime_error("cannot write " + file.string());
  }
}

void write_png_chw(const fs::path& file, const uint8_t* chw) {
  std::vector<uint8_t> hwc(kImageBytes);
  for (int p = 0; p < kPlaneBytes; ++p) {
    for (int c = 0; c < kChannels; ++c) hwc[p * kChannels + c] = chw[c * kPlaneBytes + p];
  }
  write_png(file, kWidth, kHeight, kChannels, hwc);
}

void write_image_folder(const Dataset& dataset, const fs::path& root, Split split) {
  std::vector<int> in_class(dataset.class_names.size(), 0);
  for (int64_t i = 0; i < dataset.n; ++i) {
    const int label = dataset.labels[i];
    char name[32];
    std::snprintf(name, sizeof name, "img_%05d.png", in_class[label]++);
    write_png_chw(root / split_name(split) / dataset.class_names[label] / name, dataset.image(i));
  }
}

LogCapture::LogCapture() : previous_(spdlog::default_logger()) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
}

LogCapture::~LogCapture() { spdlog::set_default_logger(previous_); }

}  // namespace dsc::data::testing
