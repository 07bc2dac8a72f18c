// Tests of pack_cifar10: the binary files it writes (sizes, the even train split, the meta file)
// read back to identical images, labels and class names from both source layouts; failures
// leave no temporary or half-written file behind.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

#include "data/cifar10.h"
#include "data_test_util.h"

namespace dsc::data {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::data_error;
using testing::TempDir;

void check_same(const Dataset& got, const Dataset& want) {
  REQUIRE(got.n == want.n);
  CHECK(got.labels == want.labels);
  CHECK(got.class_names == want.class_names);
  CHECK(std::memcmp(got.pixels.data(), want.pixels.data(), want.pixels.size()) == 0);
}

std::vector<fs::path> leftovers(const fs::path& folder) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".partial") out.push_back(entry.path());
  }
  return out;
}

TEST_CASE("train_file_count spreads images over five files as evenly as possible") {
  CHECK(train_file_count(50000, 0) == 10000);
  CHECK(train_file_count(50000, 4) == 10000);
  const std::vector<int64_t> want = {5, 5, 5, 4, 4};
  for (int k = 0; k < kTrainFiles; ++k) CHECK(train_file_count(23, k) == want[k]);
  CHECK(train_file_count(3, 3) == 0);
}

TEST_CASE("pack: memory -> binary files -> identical data set") {
  TempDir dir;
  const std::vector<std::string> names = {"zebra", "apple", "mango"};
  const Dataset train = testing::random_dataset(23, 3, 21, names);
  const Dataset test = testing::random_dataset(7, 3, 22, names);
  const fs::path out = dir / "packed" / "nested";
  pack_cifar10(train, test, out.string());

  const std::vector<int64_t> records = {5, 5, 5, 4, 4};
  for (int k = 0; k < kTrainFiles; ++k) {
    const fs::path file = out / ("data_batch_" + std::to_string(k + 1) + ".bin");
    CHECK(fs::file_size(file) == static_cast<uintmax_t>(records[k] * kRecordBytes));
  }
  CHECK(fs::file_size(out / "test_batch.bin") == 7u * kRecordBytes);
  std::ifstream meta(out / "batches.meta.txt");
  const std::string text((std::istreambuf_iterator<char>(meta)), {});
  CHECK(text == "zebra\napple\nmango\n");  // label order kept, not re-sorted
  CHECK(leftovers(out).empty());

  check_same(load_cifar10(out.string(), Split::kTrain), train);
  check_same(load_cifar10(out.string(), Split::kTest), test);

  pack_cifar10(test, test, out.string());  // existing files are replaced
  check_same(load_cifar10(out.string(), Split::kTrain), test);
}

TEST_CASE("pack: image folder -> binary files -> identical data set") {
  TempDir dir;
  const Dataset train = testing::random_dataset(30, 10, 23, cifar10_class_names());
  const Dataset test = testing::random_dataset(10, 10, 24, cifar10_class_names());
  testing::write_image_folder(train, dir / "png", Split::kTrain);
  testing::write_image_folder(test, dir / "png", Split::kTest);
  const Dataset png_train = load_cifar10((dir / "png").string(), Split::kTrain);
  const Dataset png_test = load_cifar10((dir / "png").string(), Split::kTest);
  REQUIRE(png_train.n == 30);

  pack_cifar10(png_train, png_test, (dir / "bin").string());
  check_same(load_cifar10((dir / "bin").string(), Split::kTrain), png_train);
  check_same(load_cifar10((dir / "bin").string(), Split::kTest), png_test);
  // Packing does not reorder: data set order is label-major, like the folder reader's.
  CHECK(testing::image_id(png_train.image(0)) == 0);
  CHECK(testing::image_id(png_train.image(1)) == 10);
}

TEST_CASE("pack: errors name the folder and leave nothing half-written") {
  TempDir dir;
  const Dataset train = testing::random_dataset(12, 2, 25);
  const Dataset test = testing::random_dataset(4, 2, 26);

  testing::write_bytes(dir / "a_file", {1});
  std::string message = data_error([&] { pack_cifar10(train, test, (dir / "a_file").string()); });
  INFO(message);
  CHECK(contains(message, (dir / "a_file").string()));

  // A folder in the way of one temporary file: writing fails after two files were written.
  fs::create_directories(dir / "out" / "data_batch_3.bin.partial");
  message = data_error([&] { pack_cifar10(train, test, (dir / "out").string()); });
  CHECK(contains(message, "data_batch_3.bin.partial"));
  CHECK(leftovers(dir / "out").empty());
  CHECK_FALSE(fs::exists(dir / "out" / "data_batch_1.bin"));

  Dataset other = test;
  other.class_names = {"x", "y"};
  message = data_error([&] { pack_cifar10(train, other, (dir / "out2").string()); });
  CHECK(contains(message, "different class names"));

  Dataset bad = train;
  bad.labels[5] = 2;
  message = data_error([&] { pack_cifar10(bad, test, (dir / "out3").string()); });
  CHECK(contains(message, "image 5 has label 2, expected 0..1"));
}

}  // namespace
}  // namespace dsc::data
