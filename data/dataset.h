// A CIFAR-style image data set held in memory, and the operations on it that need no file format.
//
// Layout: `pixels` holds `n` images of 3 x 32 x 32 uint8 values, each image CHW with the planes in
// order R, G, B and each plane row-major -- exactly the pixel part of a CIFAR-10 binary record, so
// image i starts at pixels[i * kImageBytes]. `labels[i]` is image i's class, an index into
// `class_names`. This library does not depend on the tensor library: it produces plain host
// buffers.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsc::data {

// Every failure to read, decode or write data is reported with this type; the message names the
// file or folder, what is wrong and what was expected. Apps print what() and exit non-zero.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Split { kTrain, kTest };

// "train" or "test"; parse_split throws DataError on anything else.
const char* split_name(Split split);
Split parse_split(const std::string& name);

inline constexpr int kChannels = 3;
inline constexpr int kHeight = 32;
inline constexpr int kWidth = 32;
inline constexpr int kPlaneBytes = kHeight * kWidth;         // 1024
inline constexpr int kImageBytes = kChannels * kPlaneBytes;  // 3072
inline constexpr int kRecordBytes = 1 + kImageBytes;         // 3073: label byte + pixels

// CIFAR-10's class names in its label order 0..9.
const std::vector<std::string>& cifar10_class_names();

struct Dataset {
  int64_t n = 0;                         // number of images
  std::vector<uint8_t> pixels;           // n * kImageBytes, CHW (R, G, B planes) per image
  std::vector<uint8_t> labels;           // n, each < class_names.size()
  std::vector<std::string> class_names;  // label -> name
  Split split = Split::kTrain;
  std::string source;  // the file or folder it was read from
  std::string format;  // "cifar10-binary", "image-folder" or "subset of ..."

  const uint8_t* image(int64_t i) const { return pixels.data() + i * kImageBytes; }
  uint8_t* image(int64_t i) { return pixels.data() + i * kImageBytes; }
  int num_classes() const { return static_cast<int>(class_names.size()); }
};

// Number of images per class (size num_classes()).
std::vector<int64_t> class_counts(const Dataset& dataset);

// Population mean and standard deviation of each channel over all pixels, pixels scaled to [0,1].
struct ChannelStats {
  std::array<double, kChannels> mean{};
  std::array<double, kChannels> std{};
};
ChannelStats channel_stats(const Dataset& dataset);

// A deterministic subset of `limit` images spread evenly over the classes: round robin over the
// classes (label order), taking each class's images in data set order, skipping classes that run
// out. The chosen images keep their data set order. limit >= n returns a copy of everything;
// limit <= 0 throws DataError.
Dataset subset(const Dataset& dataset, int64_t limit);

// Checks the invariants above (buffer sizes, labels < num_classes); throws DataError naming
// `dataset.source` if one does not hold.
void validate(const Dataset& dataset);

}  // namespace dsc::data
