// The timing loop behind every `bench` number, and the facts printed next to it. What it
// measures: the wall time of one iteration of a callable that queues work on a device. How:
// untimed warm-up iterations (at least one; cuDNN's algorithm search, allocator growth and page
// faults land there), then an untimed calibration that grows a chunk of iterations until it lasts
// about a tenth of --min-time; then `repeats` timed repeats, each running whole chunks until at
// least min_time has passed, with sync() (the device's synchronize) after every chunk and a
// std::chrono::steady_clock around the repeat. A repeat therefore lasts >= min_time even when the
// machine slows down after calibration, and a sync every ~min_time/10 costs the GPU nothing
// measurable. Statistics are over repeats: median, min and max of the time per iteration.
// Tested in tests/apps/test_bench.cpp (call counts, a sleeping callable, repeat lengths).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dsc::bench {

struct TimingOptions {
  double min_time = 1.0;  // seconds per timed repeat (0: one iteration per repeat)
  int repeats = 5;        // timed repeats
  int warmup = 2;         // untimed iterations before calibration (at least 1 is run)
};

struct TimingStats {
  double median_s = 0, min_s = 0, max_s = 0;  // per iteration, over repeats
  int64_t chunk = 0;                          // iterations between two syncs
  int64_t iterations = 0;                     // timed iterations, all repeats together
  std::vector<double> per_iter_s;             // one per repeat, in run order
  std::vector<double> repeat_s;               // wall time of each repeat (>= min_time)
};

// Warm-up and calibration (untimed); returns the chunk: iterations lasting about min_time / 10.
int64_t warm_up(const std::function<void()>& fn, const std::function<void()>& sync,
                const TimingOptions& o);
// `repeats` timed repeats, each of whole chunks until min_time has passed (one chunk at least).
TimingStats time_repeats(const std::function<void()>& fn, const std::function<void()>& sync,
                         int64_t chunk, int repeats, double min_time);
// warm_up then time_repeats.
TimingStats measure(const std::function<void()>& fn, const std::function<void()>& sync,
                    const TimingOptions& o);

double median(std::vector<double> v);

// ---- context written next to every number --------------------------------------------------
std::string utc_now_iso8601();  // "2026-11-24T05:40:12Z"
std::string cpu_model_name();   // /proc/cpuinfo "model name" (what lscpu prints), or "unknown"
double load_average_1m();       // /proc/loadavg, -1 when unreadable

// CPU time of the whole machine and of this process (Linux /proc/stat, /proc/self/stat), to tell
// how much OTHER work shared the machine during a measurement: the load average lags by a minute
// and counts this process too.
struct CpuTimes {
  bool valid = false;
  double busy_s = 0, total_s = 0;  // all CPUs: busy (incl. steal), busy + idle
  double self_s = 0;               // this process, all threads
  int cpus = 0;
};
CpuTimes cpu_times_now();
// Mean number of CPUs kept busy by other processes (and the hypervisor's steal) between two
// snapshots, in [0, cpus]; -1 when unknown.
double other_cpu_load(const CpuTimes& before, const CpuTimes& after);

}  // namespace dsc::bench
