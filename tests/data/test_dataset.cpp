// Tests of the format-independent parts: the class-balanced subset (round robin over classes in
// data set order), channel statistics on known pixels, split names, validate(), and the data
// path search of resolve_data_path.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>

#include "data/cifar10.h"
#include "data_test_util.h"

namespace dsc::data {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::data_error;
using testing::TempDir;

// A data set with the given labels, image i identified by testing::image_id.
Dataset with_labels(const std::vector<uint8_t>& labels, int num_classes) {
  Dataset d = testing::random_dataset(static_cast<int64_t>(labels.size()), num_classes, 31);
  d.labels = labels;
  return d;
}

std::vector<int64_t> ids(const Dataset& d) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.n; ++i) out.push_back(testing::image_id(d.image(i)));
  return out;
}

TEST_CASE("subset: round robin over classes, data set order kept, images intact") {
  // Class 0: ids 0-3, 8-13 (10); class 1: ids 4, 5 (2); class 2: ids 6, 7, 14-16 (5).
  const Dataset d = with_labels({0, 0, 0, 0, 1, 1, 2, 2, 0, 0, 0, 0, 0, 0, 2, 2, 2}, 3);
  const Dataset s = subset(d, 9);
  // Rounds: {0, 4, 6}, {1, 5, 7}, {2, 14} (class 1 ran out), {3}: 4 / 2 / 3 per class.
  CHECK(ids(s) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 14});
  CHECK(class_counts(s) == std::vector<int64_t>{4, 2, 3});
  CHECK(s.labels == std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 2, 2, 2});
  for (int64_t i = 0; i < s.n; ++i) {
    CHECK(std::memcmp(s.image(i), d.image(ids(s)[i]), kImageBytes) == 0);
  }
  CHECK(s.class_names == d.class_names);
  CHECK(contains(s.format, "subset"));

  CHECK(ids(subset(d, 100)) == ids(d));
  CHECK(ids(subset(d, d.n)) == ids(d));
  CHECK(contains(data_error([&] { subset(d, 0); }), "limit must be positive"));
}

TEST_CASE("subset: balanced classes get counts differing by at most one") {
  const Dataset d = testing::random_dataset(1000, 10, 32);
  const Dataset s = subset(d, 25);
  CHECK(class_counts(s) == std::vector<int64_t>{3, 3, 3, 3, 3, 2, 2, 2, 2, 2});
  CHECK(ids(subset(d, 25)) == ids(s));  // deterministic
  CHECK(ids(s).front() == 0);
  CHECK(ids(s).back() == 24);  // the first 25 images, since labels cycle 0..9
}

TEST_CASE("channel_stats: population mean and std of pixels / 255") {
  Dataset d = testing::random_dataset(2, 1, 33);
  for (int64_t i = 0; i < d.n; ++i) {
    std::memset(d.image(i), 0, kPlaneBytes);                  // R: 0
    std::memset(d.image(i) + kPlaneBytes, 255, kPlaneBytes);  // G: 1
    for (int p = 0; p < kPlaneBytes; ++p) d.image(i)[2 * kPlaneBytes + p] = p % 2 ? 255 : 51;
  }
  const ChannelStats stats = channel_stats(d);
  CHECK(stats.mean[0] == 0.0);
  CHECK(stats.mean[1] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(stats.mean[2] == doctest::Approx(0.6).epsilon(1e-12));  // (0.2 + 1) / 2
  CHECK(stats.std[0] == 0.0);
  CHECK(stats.std[1] == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(stats.std[2] == doctest::Approx(0.4).epsilon(1e-12));
}

TEST_CASE("split names and validate") {
  CHECK(parse_split("train") == Split::kTrain);
  CHECK(parse_split("test") == Split::kTest);
  CHECK(std::string(split_name(Split::kTest)) == "test");
  CHECK(contains(data_error([] { parse_split("val"); }), "'val'"));

  Dataset d = testing::random_dataset(3, 2, 34);
  validate(d);
  d.pixels.pop_back();
  CHECK(contains(data_error([&] { validate(d); }), "expected n * 3072 = 9216"));
}

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { had_ ? ::setenv(name_, old_.c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// Changes the current directory for one scope.
class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() { fs::current_path(old_); }

 private:
  fs::path old_;
};

TEST_CASE("resolve_data_path: flag, then $CIFAR10_DIR, then data/cifar10, then ../shared") {
  TempDir dir;
  fs::create_directories(dir / "work" / "repo");
  const ScopedCwd cwd(dir / "work" / "repo");

  CHECK(resolve_data_path(dir.path().string()) == dir.path().string());
  std::string message = data_error([&] { resolve_data_path("/no/such/cifar"); });
  CHECK(contains(message, "/no/such/cifar"));
  CHECK(contains(message, "does not exist"));

  {
    const ScopedEnv env("CIFAR10_DIR", nullptr);
    message = data_error([] { resolve_data_path(""); });
    INFO(message);
    CHECK(contains(message, "$CIFAR10_DIR (not set), data/cifar10, ../shared/cifar10"));
    CHECK(contains(message, (dir / "work" / "repo").string()));

    fs::create_directories(dir / "work" / "shared" / "cifar10");
    CHECK(resolve_data_path("") == "../shared/cifar10");
    fs::create_directories(dir / "work" / "repo" / "data" / "cifar10");
    CHECK(resolve_data_path("") == "data/cifar10");
  }
  {
    const ScopedEnv env("CIFAR10_DIR", (dir / "elsewhere").c_str());
    CHECK(resolve_data_path("") == "data/cifar10");  // set but missing: next candidate
    fs::create_directories(dir / "elsewhere");
    CHECK(resolve_data_path("") == (dir / "elsewhere").string());
    fs::remove_all(dir / "work" / "repo" / "data");
    fs::remove_all(dir / "work" / "shared");
    fs::remove_all(dir / "elsewhere");
    message = data_error([] { resolve_data_path(""); });
    CHECK(contains(message, "$CIFAR10_DIR=" + (dir / "elsewhere").string()));
  }
}

}  // namespace
}  // namespace dsc::data
