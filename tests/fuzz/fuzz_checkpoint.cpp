// libFuzzer harness for the checkpoint reader: on any bytes, load_checkpoint and
// read_checkpoint_meta either succeed or throw dsc::Error - never crash, hang or touch memory
// they should not (built with ASan + UBSan by scripts/fuzz.sh checkpoint, which also writes a
// valid checkpoint of this model as the seed input).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "core/error.h"
#include "layers/checkpoint.h"
#include "layers/layers.h"

namespace {

dsc::Sequential& model() {
  static dsc::Sequential* m = [] {
    std::mt19937_64 rng(1);
    auto* s = new dsc::Sequential();
    s->add("conv", std::make_shared<dsc::Conv2d>(3, 4, 3, dsc::Conv2dOptions{}, rng));
    s->add("bn", std::make_shared<dsc::BatchNorm2d>(4));
    s->add("fc", std::make_shared<dsc::Linear>(16, 3, rng));
    if (const char* seed = std::getenv("FUZZ_SEED_OUT"))
      dsc::save_checkpoint(*s, seed, {{"model", "fuzz"}});
    return s;
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/dsc_fuzz_checkpoint_" + std::to_string(getpid());
  dsc::Sequential& m = model();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    dsc::load_checkpoint(m, path);
  } catch (const dsc::Error&) {
  }
  try {
    dsc::read_checkpoint_meta(path);
  } catch (const dsc::Error&) {
  }
  return 0;
}
