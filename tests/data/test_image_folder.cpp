// Tests of the image-folder reader against small PNG/JPEG folders written here with
// stb_image_write: exact pixels and labels, class order (CIFAR names -> CIFAR order, other names
// alphabetical), file order by name, gray/RGBA conversion with one warning, and every error;
// decode_image on its own, with the hostile files the fuzzer found (tests/fuzz/regressions).
#include <doctest/doctest.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

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

namespace dsc::data {
namespace {

std::vector<uint8_t> read_source_file(const std::string& relative) {
  std::ifstream in(std::string(DSC_SOURCE_DIR) + "/" + relative, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_CASE("decode_image: hostile files the image fuzzer found decode or fail cleanly") {
  // Found by scripts/fuzz.sh image; both are checked for memory errors and undefined behaviour
  // when this suite runs under ASan + UBSan (scripts/test-sanitize.sh, in CI).
  // A JPEG with a Huffman table segment whose symbol counts run past 256: the stb_image of Debian
  // 12 (2.27) wrote past the table's arrays; the copy in third_party/stb (2.30) decodes the image.
  std::vector<uint8_t> bytes =
      read_source_file("tests/fuzz/regressions/jpeg_dht_over_256_symbols.jpg");
  std::vector<uint8_t> chw(kImageBytes);
  CHECK(decode_image(bytes.data(), bytes.size(), "hostile.jpg", chw.data()) == 3);

  // A PNG whose first IDAT chunk is empty: stb_image copied 0 bytes to a null buffer (undefined
  // behaviour; patched in third_party/stb) and fails the file.
  bytes = read_source_file("tests/fuzz/regressions/png_empty_first_idat.png");
  std::string message =
      data_error([&] { decode_image(bytes.data(), bytes.size(), "hostile.png", chw.data()); });
  CHECK(contains(message, "hostile.png: cannot decode the image ("));
  CHECK(contains(message, "of 3048 bytes"));

  // The same through the folder reader, whose worker thread has had no stb_image failure before.
  TempDir dir;
  testing::write_bytes(dir / "train" / "class0" / "a.png", bytes);
  message = data_error([&] { load_cifar10(dir.path().string(), Split::kTrain); });
  CHECK(contains(message,
                 (dir / "train" / "class0" / "a.png").string() + ": cannot decode the image ("));
}

TEST_CASE("decode_image: the size comes from the header, before any pixel is decoded") {
  // A PNG signature, an IHDR chunk claiming 10000 x 10000 RGB pixels (300 MB, within stb_image's
  // own limits) and an empty IDAT chunk: the header alone is enough to reject the file.
  std::vector<uint8_t> png = {
      0x89, 'P', 'N',  'G',  '\r', '\n', 0x1a, '\n',  // signature
      0,    0,   0,    13,   'I',  'H',  'D',  'R',   // chunk length, type
      0,    0,   0x27, 0x10, 0,    0,    0x27, 0x10,  // width, height
      8,    2,   0,    0,    0,  // 8 bits, RGB, deflate, no filter, no interlace
      0,    0,   0,    0,        // CRC (stb_image does not check it)
      0,    0,   0,    0,    'I',  'D',  'A',  'T',  0, 0, 0, 0};  // empty IDAT chunk, CRC
  std::vector<uint8_t> chw(kImageBytes);
  const std::string message =
      data_error([&] { decode_image(png.data(), png.size(), "huge.png", chw.data()); });
  INFO(message);
  CHECK(contains(message, "huge.png: image is 10000x10000 pixels, expected 32x32"));
}

TEST_CASE("decode_image: RGB, gray and RGBA files give the channel count and CHW planes") {
  std::vector<uint8_t> rgb(32 * 32 * 3), chw(kImageBytes);  // PNG is lossless: exact pixels
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7 + 1);
  for (const int channels : {3, 1, 4}) {
    std::vector<uint8_t> hwc(32 * 32 * channels);
    for (int p = 0; p < 32 * 32; ++p) {
      for (int c = 0; c < channels; ++c) hwc[p * channels + c] = rgb[p * 3 + std::min(c, 2)];
    }
    TempDir dir;
    testing::write_png(dir / "x.png", 32, 32, channels, hwc);
    std::ifstream in(dir / "x.png", std::ios::binary);
    const std::vector<uint8_t> png{std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>()};
    CHECK(decode_image(png.data(), png.size(), "x.png", chw.data()) == channels);
    for (int p = 0; p < kPlaneBytes; ++p) {
      const int src = p * channels;
      const uint8_t r = hwc[src], g = channels == 1 ? r : hwc[src + 1],
                    b = channels == 1 ? r : hwc[src + 2];
      REQUIRE(chw[p] == r);
      REQUIRE(chw[kPlaneBytes + p] == g);
      REQUIRE(chw[2 * kPlaneBytes + p] == b);
    }
  }
}

}  // namespace
}  // namespace dsc::data
