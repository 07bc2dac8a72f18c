// Tests of the image-folder reader against small PNG/JPEG folders written here with
// stb_image_write: exact pixels and labels, class order (CIFAR names -> CIFAR order, other names
// alphabetical), file order by name, gray/RGBA conversion with one warning, and every error.
#include <doctest/doctest.h>
#include <stb_image_write.h>

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

std::vector<uint8_t> solid(int w, int h, int channels, uint8_t value) {
  return std::vector<uint8_t>(static_cast<size_t>(w) * h * channels, value);
}

TEST_CASE("image folder: CIFAR class names map to CIFAR's label order, exact pixels") {
  TempDir dir;
  // Written in reverse label order so the mapping cannot come from creation order.
  std::vector<std::string> names(cifar10_class_names().rbegin(), cifar10_class_names().rend());
  const Dataset written = testing::random_dataset(20, 10, 11, names);  // label i % 10
  testing::write_image_folder(written, dir.path(), Split::kTrain);
  testing::write_image_folder(testing::random_dataset(10, 10, 12, names), dir.path(), Split::kTest);

  for (int threads : {1, 3}) {
    const Dataset got = read_image_folder(dir.path().string(), Split::kTrain, threads);
    REQUIRE(got.n == 20);
    CHECK(got.class_names == cifar10_class_names());
    CHECK(got.format == "image-folder");
    // Label order: airplane (written label 9) first; within a class, file name order.
    for (int64_t i = 0; i < got.n; ++i) {
      const int64_t id = testing::image_id(got.image(i));
      REQUIRE(id < written.n);
      CHECK(names[written.labels[id]] == got.class_names[got.labels[i]]);
      CHECK(std::memcmp(got.image(i), written.image(id), kImageBytes) == 0);
    }
    CHECK(testing::image_id(got.image(0)) == 9);    // airplane, img_00000
    CHECK(testing::image_id(got.image(1)) == 19);   // airplane, img_00001
    CHECK(testing::image_id(got.image(19)) == 10);  // truck, img_00001
  }
  CHECK(class_counts(load_cifar10(dir.path().string(), Split::kTest)) ==
        std::vector<int64_t>(10, 1));
}

TEST_CASE("image folder: other class names sort alphabetically, files by name") {
  TempDir dir;
  const Dataset images = testing::random_dataset(4, 1, 13);
  const fs::path train = dir / "train";
  testing::write_png_chw(train / "zebra" / "b.png", images.image(0));
  testing::write_png_chw(train / "zebra" / "a.png", images.image(1));
  testing::write_png_chw(train / "apple" / "x.PNG", images.image(2));
  testing::write_png_chw(train / "mango" / "m.png", images.image(3));
  testing::write_bytes(train / "mango" / "readme.txt", {1});  // ignored: not an image

  const Dataset got = load_cifar10(dir.path().string(), Split::kTrain);
  REQUIRE(got.n == 4);
  CHECK(got.class_names == std::vector<std::string>{"apple", "mango", "zebra"});
  CHECK(got.labels == std::vector<uint8_t>{0, 1, 2, 2});
  const std::vector<int64_t> want_ids = {2, 3, 1, 0};
  for (int i = 0; i < 4; ++i) {
    CHECK(std::memcmp(got.image(i), images.image(want_ids[i]), kImageBytes) == 0);
  }
}

TEST_CASE("image folder: grayscale and RGBA are converted to RGB with one warning") {
  TempDir dir;
  std::vector<uint8_t> gray(kPlaneBytes);
  for (int p = 0; p < kPlaneBytes; ++p) gray[p] = static_cast<uint8_t>(p * 7 + 1);
  std::vector<uint8_t> rgba(kPlaneBytes * 4);
  for (size_t k = 0; k < rgba.size(); ++k) rgba[k] = static_cast<uint8_t>(k * 13 + 5);
  testing::write_png(dir / "train" / "c" / "a_gray.png", 32, 32, 1, gray);
  testing::write_png(dir / "train" / "c" / "b_gray.png", 32, 32, 1, gray);
  testing::write_png(dir / "train" / "c" / "c_rgba.png", 32, 32, 4, rgba);

  testing::LogCapture log;
  const Dataset got = load_cifar10(dir.path().string(), Split::kTrain);
  REQUIRE(got.n == 3);
  for (int c = 0; c < 3; ++c) {
    for (int p = 0; p < kPlaneBytes; ++p) {
      REQUIRE(got.image(0)[c * kPlaneBytes + p] == gray[p]);
      REQUIRE(got.image(2)[c * kPlaneBytes + p] == rgba[p * 4 + c]);  // alpha dropped
    }
  }
  const std::string text = log.text();
  INFO(text);
  CHECK(contains(text, "3 of 3 images are not 8-bit RGB"));
  CHECK(contains(text, "a_gray.png is grayscale"));
  CHECK(contains(text, "converted to RGB"));
  CHECK(text.find("converted") == text.rfind("converted"));  // logged once
}

TEST_CASE("image folder: JPEG files are read") {
  TempDir dir;
  std::vector<uint8_t> rgb(kImageBytes);
  for (int p = 0; p < kPlaneBytes; ++p) rgb[3 * p] = 200, rgb[3 * p + 1] = 100, rgb[3 * p + 2] = 30;
  fs::create_directories(dir / "train" / "c");
  REQUIRE(stbi_write_jpg((dir / "train" / "c" / "x.jpg").c_str(), 32, 32, 3, rgb.data(), 95));
  const Dataset got = load_cifar10(dir.path().string(), Split::kTrain);
  REQUIRE(got.n == 1);
  CHECK(std::abs(got.image(0)[0] - 200) <= 4);  // lossy
  CHECK(std::abs(got.image(0)[kPlaneBytes] - 100) <= 4);
  CHECK(std::abs(got.image(0)[2 * kPlaneBytes] - 30) <= 4);
}

TEST_CASE("image folder: undecodable and wrongly sized images name the file") {
  TempDir dir;
  const Dataset images = testing::random_dataset(130, 1, 14);
  testing::write_image_folder(images, dir.path(), Split::kTrain);  // train/class0/img_*.png
  const fs::path bad = dir / "train" / "class0" / "img_00077.png";
  testing::write_bytes(bad, {0x89, 'P', 'N', 'G', 1, 2, 3});
  std::string message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  INFO(message);
  CHECK(contains(message, bad.string()));
  CHECK(contains(message, "cannot decode"));
  CHECK(contains(message, "7 bytes"));

  testing::write_png(bad, 16, 8, 3, solid(16, 8, 3, 99));
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message, bad.string()));
  CHECK(contains(message, "16x8 pixels, expected 32x32"));
}

TEST_CASE("image folder: missing split, no classes, empty class, classes differing by split") {
  TempDir dir;
  const Dataset images = testing::random_dataset(2, 2, 15);
  testing::write_image_folder(images, dir.path(), Split::kTrain);

  std::string message = data_error([&] { load_cifar10(dir.path().string(), Split::kTest); });
  INFO(message);
  CHECK(contains(message, "missing test split"));
  CHECK(contains(message, (dir / "test").string()));
  CHECK(contains(message, "holds: train/"));

  fs::create_directories(dir / "test");
  testing::write_bytes(dir / "test" / "labels.csv", {1});
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTest); });
  CHECK(contains(message, "no class folders in " + (dir / "test").string()));
  CHECK(contains(message, "labels.csv"));

  fs::create_directories(dir / "test" / "class0");
  fs::create_directories(dir / "test" / "class1");
  testing::write_bytes(dir / "test" / "class1" / "notes.txt", {1});
  testing::write_png_chw(dir / "test" / "class0" / "a.png", images.image(0));
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTest); });
  CHECK(contains(message, "empty class folder " + (dir / "test" / "class1").string()));
  CHECK(contains(message, "notes.txt"));

  fs::create_directories(dir / "test" / "class2");
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message, "class folders differ"));
  CHECK(contains(message, "class0, class1, class2"));
}

}  // namespace
}  // namespace dsc::data
