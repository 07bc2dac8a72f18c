// A one-line progress bar for a training epoch (steps, running loss, images/sec), redrawn at
// most five times a second; drawn only when enabled (a terminal), otherwise silent.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>

namespace dsc {

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool enabled, int epoch, int epochs, int64_t total);
  // Whether update(done, ...) would draw now (at most 5 times a second, and at the end); the
  // caller reads the running loss, which waits for the device, only then.
  bool due(int64_t done) const;
  void update(int64_t done, double loss, double images_per_sec);
  void finish();  // clears the line

 private:
  std::ostream& out_;
  bool enabled_;
  int epoch_, epochs_;
  int64_t total_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace dsc
