// Benchmark of the CPU convolution kernels (core/cpu/conv2d.h) on the seed model's layers: batch
// 128, 32x32, float, 3x3 stride 1 pad 1 (normal conv1 3->128, conv2..4 128->128), depthwise 3x3 and
// pointwise 1x1 (DepSep). Random uniform inputs, one warm-up call excluded, median of --repeats
// calls; FLOP/s count 2 FLOPs per multiply-add. Also times one large SGEMM as the machine's ceiling
// and prints the convolution time of one training step of each model.
// Usage: kernels_conv [--repeats N] [--threads T] [--batch B] [--only LAYER-NAME-SUBSTRING]
//        [--stat median|min] [--clock wall|cpu]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpu/conv2d.h"
#include "core/cpu/gemm.h"

namespace {

using dsc::ConvShape;

bool g_use_min = false;  // --stat min: the fastest repeat instead of the median (a busy machine)

bool g_cpu_clock = false;  // --clock cpu: process CPU time / threads (A/B tests on a busy machine)

double now_ms() {
  if (!g_cpu_clock)
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6) / dsc::cpu::num_threads();
}

double median_ms(const std::function<void()>& fn, int repeats) {
  fn();  // warm-up: scratch allocation, page faults, thread start
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const double t0 = now_ms();
    fn();
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return g_use_min ? t.front() : t[t.size() / 2];
}

// 64-byte-aligned buffers, as the framework's CPU allocator hands out.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
  }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const AlignedAllocator&) const { return true; }
};
using Buffer = std::vector<float, AlignedAllocator<float>>;

Buffer random_vec(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Buffer v(n);
  for (auto& e : v) e = u(gen);
  return v;
}

ConvShape make(int n, int c, int k, int r, int pad, int groups) {
  ConvShape s;
  s.n = n, s.c = c, s.h = 32, s.w = 32, s.k = k, s.r = r, s.s = r, s.stride = 1, s.pad = pad;
  s.groups = groups;
  return s;
}

struct Timing {
  double fwd = 0, bwd_data = 0, bwd_filter = 0;
};

const char* g_only = nullptr;  // --only SUBSTRING: time only the layers whose name contains it

Timing time_layer(const char* name, const ConvShape& s, int repeats) {
  if (g_only && !std::strstr(name, g_only)) return {};
  const auto x = random_vec(s.x_numel(), 1), w = random_vec(s.w_numel(), 2), b = random_vec(s.k, 3),
             dy = random_vec(s.y_numel(), 4);
  Buffer y(s.y_numel()), dx(s.x_numel()), dw(s.w_numel()), db(s.k);
  Timing t;
  t.fwd = median_ms([&] { dsc::cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data()); },
                    repeats);
  t.bwd_data = median_ms([&] { dsc::cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data()); },
                         repeats);
  t.bwd_filter = median_ms(
      [&] { dsc::cpu::conv2d_backward_filter(s, x.data(), dy.data(), dw.data(), db.data()); },
      repeats);
  const double gflop = 2.0 * double(s.macs()) * 1e-9;
  std::printf("%-22s %9.2f %7.1f  %9.2f %7.1f  %9.2f %7.1f\n", name, t.fwd, gflop / t.fwd * 1e3,
              t.bwd_data, gflop / t.bwd_data * 1e3, t.bwd_filter, gflop / t.bwd_filter * 1e3);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 7, threads = 0, batch = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--only")) g_only = argv[i + 1];
    if (!std::strcmp(argv[i], "--stat")) g_use_min = !std::strcmp(argv[i + 1], "min");
    if (!std::strcmp(argv[i], "--clock")) g_cpu_clock = !std::strcmp(argv[i + 1], "cpu");
  }
  dsc::cpu::set_num_threads(threads);
  std::printf("conv kernels, float, batch %d, 32x32, %d threads, %s of %d, %s time\n", batch,
              dsc::cpu::num_threads(), g_use_min ? "min" : "median", repeats,
              g_cpu_clock ? "cpu/threads" : "wall");

  {  // the machine's GEMM ceiling, measured in the same run
    const int m = 128, k = 1152, n = 8192;
    const auto a = random_vec(int64_t(m) * k, 5), bm = random_vec(int64_t(k) * n, 6);
    Buffer c(int64_t(m) * n);
    const double ms = median_ms(
        [&] {
          dsc::cpu::gemm(false, false, m, n, k, 1.f, a.data(), k, bm.data(), n, 0.f, c.data(), n);
        },
        repeats);
    std::printf("sgemm %dx%dx%d: %.2f ms, %.1f GFLOP/s\n\n", m, n, k, ms,
                2.0 * m * n * k / ms * 1e-6);
  }

  std::printf("%-22s %9s %7s  %9s %7s  %9s %7s\n", "layer", "fwd ms", "GF/s", "bwd-d ms", "GF/s",
              "bwd-f ms", "GF/s");
  const Timing conv1 = time_layer("conv1 3->128 3x3", make(batch, 3, 128, 3, 1, 1), repeats);
  const Timing conv2 = time_layer("conv2-4 128->128 3x3", make(batch, 128, 128, 3, 1, 1), repeats);
  const Timing dw1 = time_layer("dw1 3ch 3x3", make(batch, 3, 3, 3, 1, 3), repeats);
  const Timing pw1 = time_layer("pw1 3->128 1x1", make(batch, 3, 128, 1, 0, 1), repeats);
  const Timing dw2 = time_layer("dw2-4 128ch 3x3", make(batch, 128, 128, 3, 1, 128), repeats);
  const Timing pw2 = time_layer("pw2-4 128->128 1x1", make(batch, 128, 128, 1, 0, 1), repeats);

  // One training step: layer 1 needs no input gradient (its input is the data).
  auto all = [](const Timing& t) { return t.fwd + t.bwd_data + t.bwd_filter; };
  const double normal = conv1.fwd + conv1.bwd_filter + 3 * all(conv2);
  const double depsep = dw1.fwd + dw1.bwd_filter + all(pw1) + 3 * (all(dw2) + all(pw2));
  std::printf("\nconv time per training step (batch %d): normal %.1f ms, depsep %.1f ms\n", batch,
              normal, depsep);
  return 0;
}
