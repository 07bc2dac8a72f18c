// Reader of the image-folder form of CIFAR-10: <root>/<split>/<class>/*.png|*.jpg|*.jpeg, decoded
// with stb_image on several std::threads. Each decoded image (HWC, RGB) is transposed into the
// CIFAR binary record layout: planes R, G, B of 32x32, row-major. Grayscale, gray+alpha and RGBA
// files are converted to RGB by stb_image (gray replicated, alpha dropped) with one warning per
// load. Class order: CIFAR-10's label order when the class folders are exactly its ten names,
// otherwise alphabetical; files sorted by name within a class.
// Tested in tests/data/test_image_folder.cpp (PNGs written with stb_image_write, every error case),
// tests/data/test_real_cifar10.cpp (the published channel means of the real train split) and
// fuzzed through decode_image by tests/fuzz/fuzz_image.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "data/cifar10.h"
#include "data/io_util.h"

// The one definition of stb_image's functions (PNG and JPEG decoders only), from the copy in
// third_party/stb (v2.30; third_party/stb/README.md says why not the system's).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include "third_party/stb/stb_image.h"

namespace dsc::data {
namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// Names of the sub-folders of `folder` (hidden ones skipped), sorted.
std::vector<std::string> sub_folders(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> class_order(std::vector<std::string> names) {
  std::vector<std::string> cifar = cifar10_class_names();
  std::vector<std::string> sorted_cifar = cifar;
  std::sort(sorted_cifar.begin(), sorted_cifar.end());
  if (names == sorted_cifar) return cifar;
  return names;  // already sorted alphabetically
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

// Reads a whole file into `bytes`; false if it cannot be read.
bool read_file(const fs::path& path, std::vector<unsigned char>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  bytes.clear();
  unsigned char chunk[16384];
  for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, f)) > 0;) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  const bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

// Decodes `files` into `out` with `threads` workers. Workers stop at the first failure; of the
// failures seen, the one with the lowest file index is rethrown here.
void decode_all(const std::vector<fs::path>& files, Dataset& out, int threads) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards the fields below
  int64_t error_index = -1;
  std::exception_ptr error;
  int64_t converted = 0, first_converted = -1;
  int first_converted_channels = 0;

  auto fail = [&](int64_t i, std::exception_ptr e) {
    std::lock_guard lock(mutex);
    if (!error || i < error_index) error_index = i, error = e;
    failed = true;
  };
  auto decode_some = [&] {
    std::vector<unsigned char> bytes;
    constexpr int64_t kChunk = 64;
    for (int64_t begin; !failed && (begin = next.fetch_add(kChunk)) < out.n;) {
      for (int64_t i = begin; i < std::min(begin + kChunk, out.n) && !failed; ++i) {
        const std::string name = files[i].string();
        if (!read_file(files[i], bytes)) {
          fail(i, std::make_exception_ptr(DataError(name + ": cannot read the image file")));
          break;
        }
        int channels = 0;
        try {
          channels = decode_image(bytes.data(), bytes.size(), name, out.image(i));
        } catch (const DataError&) {
          fail(i, std::current_exception());
          break;
        }
        if (channels != kChannels) {
          std::lock_guard lock(mutex);
          ++converted;
          if (first_converted < 0 || i < first_converted) {
            first_converted = i, first_converted_channels = channels;
          }
        }
      }
    }
  };
  auto worker = [&] {
    try {
      decode_some();
    } catch (...) {
      fail(out.n, std::current_exception());
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
  if (converted > 0) {
    static const char* kKinds[] = {"?", "grayscale", "grayscale+alpha", "RGB", "RGBA"};
    spdlog::warn(
        "{}: {} of {} images are not 8-bit RGB (first: {} is {}); converted to RGB "
        "(gray replicated to R, G and B, alpha dropped)",
        out.source, converted, out.n, files[first_converted].string(),
        kKinds[std::clamp(first_converted_channels, 0, 4)]);
  }
}

Dataset read_folder(const std::string& root_name, Split split, int threads) {
  const fs::path root(root_name);
  const fs::path split_dir = root / split_name(split);
  if (!detail::is_directory(split_dir)) {
    throw DataError(std::string("missing ") + split_name(split) + " split: " + split_dir.string() +
                    " not found; expected " + root_name + "/{train,test}/<class>/*.png; " +
                    root_name + " holds: " + detail::list_folder(root));
  }
  std::vector<std::string> folders = sub_folders(split_dir);
  if (folders.empty()) {
    throw DataError("no class folders in " + split_dir.string() +
                    ": expected one sub-folder of images per class; it holds: " +
                    detail::list_folder(split_dir));
  }
  // The other split must have the same classes, or labels would mean different things.
  const fs::path other = root / split_name(split == Split::kTrain ? Split::kTest : Split::kTrain);
  if (detail::is_directory(other)) {
    std::vector<std::string> other_folders = sub_folders(other);
    if (other_folders != folders) {
      throw DataError("class folders differ between " + split_dir.string() + " (" + join(folders) +
                      ") and " + other.string() + " (" + join(other_folders) +
                      "): expected the same classes in both splits");
    }
  }
  Dataset out;
  out.split = split;
  out.source = root_name;
  out.format = "image-folder";
  out.class_names = class_order(folders);
  if (out.class_names.size() > 256) {
    throw DataError(split_dir.string() + ": " + std::to_string(out.class_names.size()) +
                    " class folders, expected at most 256");
  }
  std::vector<fs::path> files;
  std::vector<uint8_t> labels;
  for (size_t label = 0; label < out.class_names.size(); ++label) {
    const fs::path class_dir = split_dir / out.class_names[label];
    std::vector<fs::path> class_files;
    for (const auto& entry : fs::directory_iterator(class_dir)) {
      if (entry.is_regular_file() && is_image_file(entry.path())) {
        class_files.push_back(entry.path());
      }
    }
    if (class_files.empty()) {
      throw DataError(
          "empty class folder " + class_dir.string() +
          ": expected .png/.jpg/.jpeg images; it holds: " + detail::list_folder(class_dir));
    }
    std::sort(class_files.begin(), class_files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    files.insert(files.end(), class_files.begin(), class_files.end());
    labels.insert(labels.end(), class_files.size(), static_cast<uint8_t>(label));
  }
  out.n = static_cast<int64_t>(files.size());
  out.labels = std::move(labels);
  out.pixels.resize(out.n * kImageBytes);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, out.n / 64)));
  decode_all(files, out, threads);
  return out;
}

// The error for bytes stb_image cannot decode, with its reason for the last failure on this
// thread when it has one (some failures set none: it may be null or empty then).
DataError cannot_decode(const std::string& name, size_t size) {
  const char* reason = stbi_failure_reason();
  return DataError(name + ": cannot decode the image (" +
                   (reason && *reason ? reason : "stb_image gave no reason") +
                   "); expected a 32x32 RGB .png or .jpg file of " + std::to_string(size) +
                   " bytes");
}

}  // namespace

int decode_image(const uint8_t* bytes, size_t size, const std::string& name, uint8_t* chw) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw DataError(name + ": " + std::to_string(size) +
                    " bytes is too large for an image file; expected a 32x32 .png or .jpg");
  }
  const int len = static_cast<int>(size);
  int w = 0, h = 0, channels = 0;
  // The header first: a file that is not 32x32 is rejected without decoding its pixels.
  if (!stbi_info_from_memory(bytes, len, &w, &h, &channels)) {
    throw cannot_decode(name, size);
  }
  if (w != kWidth || h != kHeight) {
    throw DataError(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, expected 32x32");
  }
  unsigned char* rgb = stbi_load_from_memory(bytes, len, &w, &h, &channels, kChannels);
  if (!rgb) {
    throw cannot_decode(name, size);
  }
  std::unique_ptr<unsigned char, void (*)(void*)> owner(rgb, &stbi_image_free);
  if (w != kWidth || h != kHeight) {  // the header said 32x32; the decoder must agree
    throw DataError(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, expected 32x32");
  }
  for (int p = 0; p < kPlaneBytes; ++p) {  // HWC -> CHW
    chw[p] = rgb[3 * p];
    chw[kPlaneBytes + p] = rgb[3 * p + 1];
    chw[2 * kPlaneBytes + p] = rgb[3 * p + 2];
  }
  return channels;
}

Dataset read_image_folder(const std::string& root_name, Split split, int threads) {
  return detail::with_data_errors([&] { return read_folder(root_name, split, threads); });
}

}  // namespace dsc::data
