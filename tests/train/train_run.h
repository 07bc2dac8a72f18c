// Helpers shared by the tests of tests/train: running the `train` program in-process, the real
// data set's folder and a per-process temporary folder.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace dsc_test {

struct Run {
  int rc;
  std::string out, err;
};

// train_main with `args` (and --no-progress), its exit code and both streams.
inline Run train(std::vector<std::string> args) {
  std::ostringstream out, err;
  args.push_back("--no-progress");
  const int rc = dsc::train_main(args, out, err);
  return {rc, out.str(), err.str()};
}

// The real CIFAR-10 next to the source tree (../shared/cifar10), or "" when it is not there.
inline std::string real_data() {
  const std::string p = DSC_SOURCE_DIR "/../shared/cifar10";
  return std::filesystem::exists(p + "/train") ? p : "";
}

// An empty folder dsc_test_<name>_<pid> under the system's temporary folder.
inline std::filesystem::path temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() / ("dsc_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace dsc_test
