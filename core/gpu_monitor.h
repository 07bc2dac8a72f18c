// GPU utilisation sampling through NVML, for reporting "SM %" and "memory %" next to a benchmark
// (the seed article quotes both). NVML is loaded at run time with dlopen("libnvidia-ml.so.1"), so
// this compiles and links in every build, needs no CUDA headers, and reports "n/a" where NVML or a
// GPU is absent.
//
// Usage: GpuMonitor mon; mon.start(); ...timed work...; GpuUtilization u = mon.stop();
// A background thread samples nvmlDeviceGetUtilizationRates for device 0 every interval_ms; the
// result is the mean of the samples taken between start() and stop(). NVML's "gpu" figure is the
// fraction of time at least one kernel ran (what nvidia-smi shows as GPU-Util, the seed's "SM"),
// "memory" the fraction of time device memory was read or written, each over NVML's own sampling
// period (1/6 s to 1 s depending on the GPU), so intervals much shorter than a second are coarse.
// NVML numbers devices in PCI order, which may differ from CUDA's when CUDA_VISIBLE_DEVICES is set.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace dsc {

struct GpuUtilization {
  bool valid = false;         // false when NVML is unavailable or no sample was taken
  double sm_percent = 0;      // mean of NVML utilization.gpu
  double memory_percent = 0;  // mean of NVML utilization.memory
  int samples = 0;
  // "SM 57.5%, memory 17.9% (42 samples)" or "n/a".
  std::string str() const;
};

class GpuMonitor {
 public:
  explicit GpuMonitor(int device = 0, int interval_ms = 100);
  ~GpuMonitor();  // stops the sampler
  GpuMonitor(const GpuMonitor&) = delete;
  GpuMonitor& operator=(const GpuMonitor&) = delete;

  bool available() const { return available_; }
  // Why available() is false (e.g. "libnvidia-ml.so.1 not found").
  const std::string& unavailable_reason() const { return reason_; }

  // Starts a new measurement interval (restarts it if one is running). No-op when unavailable.
  void start();
  // Ends the interval and returns its means (valid = false when unavailable or no sample).
  GpuUtilization stop();

 private:
  void run();
  void sample_once();

  bool available_ = false;
  std::string reason_;
  void* device_ = nullptr;  // nvmlDevice_t
  int interval_ms_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  double sum_sm_ = 0, sum_mem_ = 0;
  int samples_ = 0;
};

}  // namespace dsc
