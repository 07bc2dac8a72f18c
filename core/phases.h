// Named phases inside one kernel call, for the step profile (train/profile.h). A kernel that does
// several kinds of work in one call (the fused CPU DepSep layer: per image and on every thread,
// the depthwise stencil, the pointwise product, the ReLU mask, ...) brackets each kind with a
// phases::Timer. While phases are enabled (the profiler does it around its profiled steps), the
// seconds of each name add up over all threads until take() returns and clears them; disabled
// (the default), a Timer costs one relaxed atomic load. Tested in tests/core/test_phases.cpp and,
// through the profile's sub-rows, in tests/train/test_profile.cpp.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace dsc::phases {

void set_enabled(bool on);
bool enabled();

// Seconds per name summed over every thread since the last take(), in the order the names first
// appeared; clears them.
std::vector<std::pair<std::string, double>> take();

// Adds `seconds` to `name` (thread-safe; does nothing while disabled).
void add(const char* name, double seconds);

// Times the phase `name` from construction (or next()) to destruction (or the next next()).
// `name` must outlive the timer (a string literal).
class Timer {
 public:
  explicit Timer(const char* name) {
    if (enabled()) start(name);
  }
  ~Timer() { stop(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void next(const char* name) {
    if (!name_) return;
    stop();
    start(name);
  }

 private:
  void start(const char* name) {
    name_ = name;
    t0_ = std::chrono::steady_clock::now();
  }
  void stop() {
    if (!name_) return;
    add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
    name_ = nullptr;
  }
  const char* name_ = nullptr;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace dsc::phases
