// Format-independent Dataset operations: split names, class counts, channel statistics, the
// class-balanced subset used by `train --limit-train N`, and invariant checks.
// Layout: Dataset.pixels is n x (R,G,B planes of 32x32) uint8, see dataset.h.
// Tested in tests/data/test_dataset.cpp (subset balance and order, statistics on known pixels) and
// tests/data/test_real_cifar10.cpp (the published CIFAR-10 train means, to 4 decimals).
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace dsc::data {

const char* split_name(Split split) { return split == Split::kTrain ? "train" : "test"; }

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  throw DataError("unknown split '" + name + "': expected 'train' or 'test'");
}

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

std::vector<int64_t> class_counts(const Dataset& dataset) {
  std::vector<int64_t> counts(dataset.class_names.size(), 0);
  for (uint8_t label : dataset.labels) {
    if (label < counts.size()) ++counts[label];
  }
  return counts;
}

ChannelStats channel_stats(const Dataset& dataset) {
  // Exact integer sums of x and x^2 per channel, then mean and population std of x / 255.
  std::array<uint64_t, kChannels> sum{}, sum_sq{};
  for (int64_t i = 0; i < dataset.n; ++i) {
    const uint8_t* image = dataset.image(i);
    for (int c = 0; c < kChannels; ++c) {
      const uint8_t* plane = image + c * kPlaneBytes;
      uint64_t s = 0, s2 = 0;
      for (int p = 0; p < kPlaneBytes; ++p) {
        s += plane[p];
        s2 += static_cast<uint64_t>(plane[p]) * plane[p];
      }
      sum[c] += s;
      sum_sq[c] += s2;
    }
  }
  ChannelStats stats;
  const double count = static_cast<double>(dataset.n) * kPlaneBytes;
  if (count == 0) return stats;
  for (int c = 0; c < kChannels; ++c) {
    const double mean = static_cast<double>(sum[c]) / count;
    const double var = static_cast<double>(sum_sq[c]) / count - mean * mean;
    stats.mean[c] = mean / 255.0;
    stats.std[c] = std::sqrt(std::max(var, 0.0)) / 255.0;
  }
  return stats;
}

Dataset subset(const Dataset& dataset, int64_t limit) {
  if (limit <= 0) {
    throw DataError("subset of " + dataset.source + ": limit must be positive, got " +
                    std::to_string(limit));
  }
  Dataset out;
  out.class_names = dataset.class_names;
  out.split = dataset.split;
  out.source = dataset.source;
  out.format = "subset of " + dataset.format;
  if (limit >= dataset.n) {
    out.n = dataset.n;
    out.pixels = dataset.pixels;
    out.labels = dataset.labels;
    return out;
  }
  // Each class's images in data set order, then round robin over the classes.
  std::vector<std::vector<int64_t>> by_class(dataset.class_names.size());
  for (int64_t i = 0; i < dataset.n; ++i) by_class[dataset.labels[i]].push_back(i);
  std::vector<bool> chosen(dataset.n, false);
  int64_t taken = 0;
  for (size_t round = 0; taken < limit; ++round) {
    for (const auto& members : by_class) {
      if (round < members.size() && taken < limit) {
        chosen[members[round]] = true;
        ++taken;
      }
    }
  }
  out.n = limit;
  out.pixels.resize(limit * kImageBytes);
  out.labels.resize(limit);
  int64_t j = 0;
  for (int64_t i = 0; i < dataset.n; ++i) {
    if (!chosen[i]) continue;
    std::copy_n(dataset.image(i), kImageBytes, out.image(j));
    out.labels[j] = dataset.labels[i];
    ++j;
  }
  return out;
}

void validate(const Dataset& dataset) {
  const std::string where = "data set " + dataset.source + ": ";
  if (dataset.n < 0 || dataset.pixels.size() != static_cast<size_t>(dataset.n) * kImageBytes) {
    throw DataError(where + "pixel buffer holds " + std::to_string(dataset.pixels.size()) +
                    " bytes, expected n * 3072 = " + std::to_string(dataset.n * kImageBytes));
  }
  if (dataset.labels.size() != static_cast<size_t>(dataset.n)) {
    throw DataError(where + "holds " + std::to_string(dataset.labels.size()) +
                    " labels, expected n = " + std::to_string(dataset.n));
  }
  if (dataset.class_names.empty() || dataset.class_names.size() > 256) {
    throw DataError(where + "has " + std::to_string(dataset.class_names.size()) +
                    " class names, expected 1..256");
  }
  for (int64_t i = 0; i < dataset.n; ++i) {
    if (dataset.labels[i] >= dataset.class_names.size()) {
      throw DataError(where + "image " + std::to_string(i) + " has label " +
                      std::to_string(dataset.labels[i]) + ", expected 0.." +
                      std::to_string(dataset.class_names.size() - 1));
    }
  }
}

}  // namespace dsc::data
