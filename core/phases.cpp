// Kernel phases (see phases.h): one global table under a mutex, touched only while enabled.
#include "core/phases.h"

#include <atomic>
#include <cstring>
#include <mutex>

namespace dsc::phases {
namespace {

std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::vector<std::pair<std::string, double>> g_totals;

}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

std::vector<std::pair<std::string, double>> take() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::pair<std::string, double>> out;
  out.swap(g_totals);
  return out;
}

void add(const char* name, double seconds) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& [n, s] : g_totals)
    if (n == name) {
      s += seconds;
      return;
    }
  g_totals.emplace_back(name, seconds);
}

}  // namespace dsc::phases
