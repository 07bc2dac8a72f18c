// The `bench` timing loop (see bench_timing.h): warm-up, calibration of a chunk lasting about
// min_time / 10, then timed repeats of whole chunks (a device synchronize after each) until
// min_time has passed, on a steady clock; median/min/max over repeats.
// Also reads the machine facts (CPU model, load average) printed next to the numbers.
// Tested in tests/apps/test_bench.cpp.
#include "apps/lib/bench_timing.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>

namespace dsc::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_for(const std::function<void()>& fn, const std::function<void()>& sync,
                   int64_t iterations) {
  sync();
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < iterations; ++i) fn();
  sync();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr int64_t kMaxIterations = int64_t(1) << 30;

}  // namespace

int64_t warm_up(const std::function<void()>& fn, const std::function<void()>& sync,
                const TimingOptions& o) {
  double last = 0;
  for (int i = 0; i < std::max(o.warmup, 1); ++i) last = seconds_for(fn, sync, 1);
  if (!(o.min_time > 0)) return 1;
  // Calibrate: grow the count until one chunk lasts a tenth of min_time, so that clock resolution
  // and the sync after each chunk are small next to the measured time.
  const double target = 0.1 * o.min_time;
  int64_t n = 1;
  double t = last;
  while (t < target && n < kMaxIterations) {
    const double grow = std::clamp(target / std::max(t, 1e-9), 2.0, 100.0);
    n = std::min<int64_t>(kMaxIterations, static_cast<int64_t>(std::ceil(n * grow)));
    t = seconds_for(fn, sync, n);
  }
  const double per_iter = std::max(t / double(n), 1e-12);
  return std::clamp<int64_t>(static_cast<int64_t>(std::llround(target / per_iter)), 1,
                             kMaxIterations);
}

TimingStats time_repeats(const std::function<void()>& fn, const std::function<void()>& sync,
                         int64_t chunk, int repeats, double min_time) {
  TimingStats s;
  s.chunk = std::max<int64_t>(chunk, 1);
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    sync();
    const auto t0 = Clock::now();
    int64_t done = 0;
    double elapsed = 0;
    do {
      for (int64_t i = 0; i < s.chunk; ++i) fn();
      sync();
      done += s.chunk;
      elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < min_time);
    s.iterations += done;
    s.repeat_s.push_back(elapsed);
    s.per_iter_s.push_back(elapsed / double(done));
  }
  s.median_s = median(s.per_iter_s);
  s.min_s = *std::min_element(s.per_iter_s.begin(), s.per_iter_s.end());
  s.max_s = *std::max_element(s.per_iter_s.begin(), s.per_iter_s.end());
  return s;
}

TimingStats measure(const std::function<void()>& fn, const std::function<void()>& sync,
                    const TimingOptions& o) {
  const int64_t chunk = warm_up(fn, sync, o);
  return time_repeats(fn, sync, chunk, o.repeats, o.min_time);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::string utc_now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) break;
      size_t b = line.find_first_not_of(" \t", colon + 1);
      return b == std::string::npos ? "unknown" : line.substr(b);
    }
  }
  return "unknown";
}

double load_average_1m() {
  std::ifstream in("/proc/loadavg");
  double v = -1;
  if (!(in >> v)) return -1;
  return v;
}

CpuTimes cpu_times_now() {
  CpuTimes c;
  const double tick = double(sysconf(_SC_CLK_TCK));
  std::ifstream stat("/proc/stat");
  std::string label;
  if (!(stat >> label) || label != "cpu" || tick <= 0) return c;
  double v[8] = {0};  // user nice system idle iowait irq softirq steal
  for (double& x : v)
    if (!(stat >> x)) return c;
  c.busy_s = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
  c.total_s = c.busy_s + (v[3] + v[4]) / tick;
  std::string line;
  while (std::getline(stat, line))
    if (line.rfind("cpu", 0) == 0 && line.size() > 3 && line[3] >= '0' && line[3] <= '9') ++c.cpus;
  std::ifstream self("/proc/self/stat");
  std::string all;
  std::getline(self, all);
  const size_t paren = all.rfind(')');  // the command name may contain spaces
  if (paren == std::string::npos) return c;
  std::istringstream rest(all.substr(paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  c.self_s = (utime + stime) / tick;
  c.valid = c.cpus > 0;
  return c;
}

double other_cpu_load(const CpuTimes& a, const CpuTimes& b) {
  if (!a.valid || !b.valid) return -1;
  const double wall = (b.total_s - a.total_s) / double(b.cpus);  // seconds per CPU
  if (!(wall > 0)) return -1;
  const double other = (b.busy_s - a.busy_s) - (b.self_s - a.self_s);
  return std::clamp(other / wall, 0.0, double(b.cpus));
}

}  // namespace dsc::bench
