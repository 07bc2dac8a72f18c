// GpuMonitor (see gpu_monitor.h): NVML loaded once per process with dlopen, a sampler thread per
// monitor. The NVML declarations below mirror nvml.h (stable C ABI: nvmlReturn_t is an int,
// nvmlDevice_t an opaque pointer, nvmlUtilization_t two unsigned ints), so no NVML or CUDA header
// is needed. Tested in tests/cuda/test_cuda_runtime.cpp (works, or reports n/a, on any machine).
#include "core/gpu_monitor.h"

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace dsc {
namespace {

struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};

using NvmlInitFn = int (*)();
using NvmlGetHandleFn = int (*)(unsigned int, void**);
using NvmlGetUtilFn = int (*)(void*, NvmlUtilization*);
using NvmlErrorStringFn = const char* (*)(int);

struct Nvml {
  bool ok = false;
  std::string error;
  NvmlGetHandleFn get_handle = nullptr;
  NvmlGetUtilFn get_utilization = nullptr;
  NvmlErrorStringFn error_string = nullptr;

  std::string describe(int code) const {
    if (error_string) return error_string(code);
    return "NVML error " + std::to_string(code);
  }
};

// Loaded and initialised once; never unloaded (other monitors may still run).
const Nvml& nvml() {
  static const Nvml lib = [] {
    Nvml n;
    void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      n.error = std::string("libnvidia-ml.so.1 not loadable") + (e ? std::string(": ") + e : "");
      return n;
    }
    auto init = reinterpret_cast<NvmlInitFn>(dlsym(h, "nvmlInit_v2"));
    n.get_handle = reinterpret_cast<NvmlGetHandleFn>(dlsym(h, "nvmlDeviceGetHandleByIndex_v2"));
    n.get_utilization = reinterpret_cast<NvmlGetUtilFn>(dlsym(h, "nvmlDeviceGetUtilizationRates"));
    n.error_string = reinterpret_cast<NvmlErrorStringFn>(dlsym(h, "nvmlErrorString"));
    if (!init || !n.get_handle || !n.get_utilization) {
      n.error = "libnvidia-ml.so.1 lacks the expected NVML functions";
      return n;
    }
    const int rc = init();
    if (rc != 0) {
      n.error = "nvmlInit failed: " + n.describe(rc);
      return n;
    }
    n.ok = true;
    return n;
  }();
  return lib;
}

}  // namespace

std::string GpuUtilization::str() const {
  if (!valid) return "n/a";
  char buf[96];
  std::snprintf(buf, sizeof buf, "SM %.1f%%, memory %.1f%% (%d samples)", sm_percent,
                memory_percent, samples);
  return buf;
}

GpuMonitor::GpuMonitor(int device, int interval_ms)
    : interval_ms_(interval_ms > 0 ? interval_ms : 100) {
  const Nvml& n = nvml();
  if (!n.ok) {
    reason_ = n.error;
    return;
  }
  void* handle = nullptr;
  const int rc = n.get_handle(static_cast<unsigned int>(device), &handle);
  if (rc != 0 || handle == nullptr) {
    reason_ = "NVML has no device " + std::to_string(device) + ": " + n.describe(rc);
    return;
  }
  NvmlUtilization u{};
  const int urc = n.get_utilization(handle, &u);
  if (urc != 0) {
    reason_ = "NVML utilisation query failed: " + n.describe(urc);
    return;
  }
  device_ = handle;
  available_ = true;
}

GpuMonitor::~GpuMonitor() { stop(); }

void GpuMonitor::start() {
  if (!available_) return;
  stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    sum_sm_ = sum_mem_ = 0;
    samples_ = 0;
    running_ = true;
  }
  thread_ = std::thread([this] { run(); });
}

GpuUtilization GpuMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  GpuUtilization r;
  std::lock_guard<std::mutex> lock(mu_);
  if (samples_ > 0) {
    r.valid = true;
    r.samples = samples_;
    r.sm_percent = sum_sm_ / samples_;
    r.memory_percent = sum_mem_ / samples_;
  }
  return r;
}

void GpuMonitor::sample_once() {
  NvmlUtilization u{};
  if (nvml().get_utilization(device_, &u) != 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  sum_sm_ += u.gpu;
  sum_mem_ += u.memory;
  ++samples_;
}

void GpuMonitor::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (running_) {
    lock.unlock();
    sample_once();
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return !running_; });
  }
}

}  // namespace dsc
