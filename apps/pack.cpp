// pack SRC DST: reads a CIFAR-10 data set in any form load_cifar10 understands (an image folder
// such as ../shared/cifar10, or the binary release) and writes it to DST in the official binary
// layout: data_batch_1..5.bin (the train split spread evenly), test_batch.bin, batches.meta.txt.
// --limit-train / --limit-test keep a class-balanced subset, the same images `train` takes with
// the same flags (e.g. a small copy to carry to another machine). Nothing half-written is left on
// error. Tested through dsc::data::pack_cifar10 in
// tests/data/test_pack.cpp and tests/data/test_real_cifar10.cpp.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "data/cifar10.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Write a CIFAR-10 data set (image folder or binary release) in the official binary layout:\n"
      "DST/data_batch_1..5.bin, DST/test_batch.bin, DST/batches.meta.txt."};
  std::string src, dst;
  app.add_option("SRC", src,
                 "data set to read: <SRC>/{train,test}/<class>/*.png or a folder of "
                 "CIFAR-10 .bin files")
      ->required();
  app.add_option("DST", dst, "folder to write (created if missing; existing files replaced)")
      ->required();
  int64_t limit_train = 0, limit_test = 0;
  app.add_option("--limit-train", limit_train,
                 "keep only N training images (a class-balanced subset, as train --limit-train)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--limit-test", limit_test, "keep only N test images")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    dsc::data::Dataset train = dsc::data::load_cifar10(src, dsc::data::Split::kTrain);
    dsc::data::Dataset test = dsc::data::load_cifar10(src, dsc::data::Split::kTest);
    if (limit_train > 0) train = dsc::data::subset(train, limit_train);
    if (limit_test > 0) test = dsc::data::subset(test, limit_test);
    const auto t1 = Clock::now();
    spdlog::info("read {} train + {} test images ({}, {} classes) from {} in {:.2f} s", train.n,
                 test.n, train.format, train.num_classes(), src,
                 std::chrono::duration<double>(t1 - t0).count());
    dsc::data::pack_cifar10(train, test, dst);
    spdlog::info("wrote {} in {:.2f} s", dst,
                 std::chrono::duration<double>(Clock::now() - t1).count());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pack: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
