// libFuzzer harness for the image-folder decoder (decode_image in data/cifar10.h, stb_image's PNG
// and JPEG decoders behind it), built with ASan + UBSan by scripts/fuzz.sh image. On any bytes,
// decode_image either fills exactly one 32x32 CHW image and returns the file's channel count
// (1..4), or throws DataError naming the file. Any other exception, a crash, a read or write
// outside the buffers, a leak or undefined behaviour is a finding; so is an allocation above
// libFuzzer's -malloc_limit_mb, which a header claiming a huge image must not cause.
#include <cstdint>
#include <cstring>
#include <vector>

#include "data/cifar10.h"
#include "data/dataset.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Exactly one image's bytes, so ASan sees any write past it.
  std::vector<uint8_t> chw(dsc::data::kImageBytes);
  try {
    const int channels = dsc::data::decode_image(data, size, "fuzz.png", chw.data());
    FUZZ_CHECK(channels >= 1 && channels <= 4);
  } catch (const dsc::data::DataError& e) {
    FUZZ_CHECK(std::strstr(e.what(), "fuzz.png") != nullptr);
  }
  return 0;
}
