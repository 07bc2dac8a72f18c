// Tests of the CIFAR-10 binary reader against records written here by hand: counts, exact pixel
// bytes and labels, file order, class names (default and batches.meta.txt), format detection, and
// every error message (file name plus expected and actual facts).
#include <doctest/doctest.h>

#include <cstring>

#include "data/cifar10.h"
#include "data_test_util.h"

namespace dsc::data {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::data_error;
using testing::TempDir;

// Writes `train` over data_batch_1..k.bin (`per_file` images each) and `test` to test_batch.bin.
void write_release(const fs::path& folder, const Dataset& train, const Dataset& test,
                   int64_t per_file) {
  for (int64_t first = 0, k = 1; first < train.n; first += per_file, ++k) {
    testing::write_bytes(folder / ("data_batch_" + std::to_string(k) + ".bin"),
                         testing::records(train, first, std::min(per_file, train.n - first)));
  }
  testing::write_bytes(folder / "test_batch.bin", testing::records(test, 0, test.n));
}

void check_same(const Dataset& got, const Dataset& want) {
  REQUIRE(got.n == want.n);
  CHECK(got.labels == want.labels);
  CHECK(std::memcmp(got.pixels.data(), want.pixels.data(), want.pixels.size()) == 0);
}

TEST_CASE("binary release: counts, exact bytes, labels and file order") {
  TempDir dir;
  const Dataset train = testing::random_dataset(13, 10, 1);
  const Dataset test = testing::random_dataset(4, 10, 2);
  write_release(dir.path(), train, test, 3);  // data_batch_1..5 with 3, 3, 3, 3, 1 images

  const Dataset got = load_cifar10(dir.path().string(), Split::kTrain);
  check_same(got, train);
  CHECK(got.format == "cifar10-binary");
  CHECK(got.split == Split::kTrain);
  CHECK(got.class_names == cifar10_class_names());
  CHECK(got.image(12)[5] == train.image(12)[5]);
  CHECK(testing::image_id(got.image(7)) == 7);  // file 3, record 1

  const Dataset got_test = load_cifar10(dir.path().string(), Split::kTest);
  check_same(got_test, test);
  CHECK(got_test.split == Split::kTest);
}

TEST_CASE("binary release: cifar-10-batches-bin subfolder and batches.meta.txt") {
  TempDir dir;
  const fs::path bin = dir / "cifar-10-batches-bin";
  const Dataset train = testing::random_dataset(6, 3, 3);
  const Dataset test = testing::random_dataset(3, 3, 4);
  write_release(bin, train, test, 6);
  const std::string meta = "zebra\r\n\nlion\n  okapi \n\n";
  testing::write_bytes(bin / "batches.meta.txt", std::vector<uint8_t>(meta.begin(), meta.end()));

  const Dataset got = load_cifar10(dir.path().string(), Split::kTrain);
  check_same(got, train);
  CHECK(got.class_names == std::vector<std::string>{"zebra", "lion", "okapi"});
  CHECK(got.source == bin.string());
}

TEST_CASE("binary release: size not a multiple of 3073") {
  TempDir dir;
  const Dataset train = testing::random_dataset(2, 10, 5);
  std::vector<uint8_t> bytes = testing::records(train, 0, 2);
  bytes.resize(bytes.size() + 5, 7);
  testing::write_bytes(dir / "data_batch_1.bin", bytes);
  testing::write_bytes(dir / "test_batch.bin", testing::records(train, 0, 1));
  const std::string message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  INFO(message);
  CHECK(contains(message, (dir / "data_batch_1.bin").string()));
  CHECK(contains(message, "size 6151 bytes"));
  CHECK(contains(message, "multiple of 3073"));
  CHECK(contains(message, "5 bytes left over"));
}

TEST_CASE("binary release: label outside the classes names file and record") {
  TempDir dir;
  Dataset train = testing::random_dataset(3, 10, 6);
  std::vector<uint8_t> bytes = testing::records(train, 0, 3);
  bytes[0] = 9;              // the largest valid label
  bytes[kRecordBytes] = 10;  // record 1: one past it
  testing::write_bytes(dir / "data_batch_1.bin", bytes);
  testing::write_bytes(dir / "test_batch.bin", testing::records(train, 0, 1));
  const std::string message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  INFO(message);
  CHECK(contains(message, "data_batch_1.bin"));
  CHECK(contains(message, "record 1 "));
  CHECK(contains(message, "label 10"));
  CHECK(contains(message, "expected 0..9"));
}

TEST_CASE("binary release: missing test split, gap in train files, empty files") {
  TempDir dir;
  const Dataset train = testing::random_dataset(4, 10, 7);
  testing::write_bytes(dir / "data_batch_1.bin", testing::records(train, 0, 2));
  testing::write_bytes(dir / "data_batch_3.bin", testing::records(train, 2, 2));

  std::string message = data_error([&] { load_cifar10(dir.path().string(), Split::kTest); });
  INFO(message);
  CHECK(contains(message, "missing test split"));
  CHECK(contains(message, (dir / "test_batch.bin").string()));
  CHECK(contains(message, "data_batch_1.bin, data_batch_3.bin"));  // what is there

  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message, (dir / "data_batch_2.bin").string()));
  CHECK(contains(message, "without gaps"));

  TempDir empty_files;
  testing::write_bytes(empty_files / "data_batch_1.bin", {});
  testing::write_bytes(empty_files / "test_batch.bin", {});
  message = data_error([&] { load_cifar10(empty_files.path().string(), Split::kTest); });
  CHECK(contains(message, "no images"));
  CHECK(contains(message, empty_files.path().string()));
}

TEST_CASE("load_cifar10: missing path, empty folder and unknown contents list what is there") {
  TempDir dir;
  std::string message =
      data_error([&] { load_cifar10((dir / "no_such_folder").string(), Split::kTrain); });
  INFO(message);
  CHECK(contains(message, "no_such_folder does not exist"));
  CHECK(contains(message, "nothing (empty folder)"));  // its parent, the empty temp folder
  CHECK(contains(message, "data_batch_1.bin"));        // what was expected

  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message, dir.path().string()));
  CHECK(contains(message, "empty folder"));

  testing::write_bytes(dir / "notes.txt", {1, 2, 3});
  fs::create_directories(dir / "images");
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message, "images/, notes.txt"));

  message = data_error([&] { load_cifar10((dir / "notes.txt").string(), Split::kTrain); });
  CHECK(contains(message, "is not a folder"));
}

}  // namespace
}  // namespace dsc::data

namespace dsc::data {
namespace {

TEST_CASE("append_cifar10_records: appends verbatim, or throws and leaves the data set unchanged") {
  const Dataset images = testing::random_dataset(3, 10, 21);
  Dataset d;
  d.class_names = cifar10_class_names();
  std::vector<uint8_t> bytes = testing::records(images, 0, 2);
  append_cifar10_records(bytes.data(), bytes.size(), "a.bin", d);
  bytes = testing::records(images, 2, 1);
  append_cifar10_records(bytes.data(), bytes.size(), "b.bin", d);
  REQUIRE(d.n == 3);
  CHECK(d.labels == images.labels);
  CHECK(d.pixels == images.pixels);

  // A bad label in the last record: nothing of the file is appended, not even the good records.
  bytes = testing::records(images, 0, 3);
  bytes[2 * kRecordBytes] = 10;
  std::string message =
      data_error([&] { append_cifar10_records(bytes.data(), bytes.size(), "c.bin", d); });
  CHECK(contains(message, "c.bin: record 2 (byte offset 6146) has label 10, expected 0..9"));
  CHECK(d.n == 3);
  CHECK(d.labels.size() == 3);
  CHECK(d.pixels.size() == 3 * kImageBytes);

  message = data_error([&] { append_cifar10_records(bytes.data(), 3072, "d.bin", d); });
  CHECK(contains(message, "d.bin: size 3072 bytes is not a multiple"));
  CHECK(d.n == 3);
}

TEST_CASE("parse_class_names: trimmed names, blank lines skipped, 1..256 names") {
  CHECK(parse_class_names("  apple \r\n\n\tmango\r\nzebra", "m.txt") ==
        std::vector<std::string>{"apple", "mango", "zebra"});
  CHECK(contains(data_error([] { parse_class_names(" \n\r\n", "m.txt"); }),
                 "m.txt: lists 0 class names, expected 1..256"));
  std::string many;
  for (int i = 0; i < 257; ++i) many += "c" + std::to_string(i) + "\n";
  CHECK(contains(data_error([&] { parse_class_names(many, "m.txt"); }), "lists 257 class names"));
}

}  // namespace
}  // namespace dsc::data
