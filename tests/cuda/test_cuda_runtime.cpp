// The CUDA runtime pieces: availability reporting (runs everywhere: without a GPU it must give a
// reason and refuse cleanly), every table entry filled (one check per entry of core/kernel_list.h),
// host <-> device copies (chunked staging, views, device-to-device; host->device asynchronous yet
// ordered, and not waiting for queued kernels; staging slots that grow only for larger copies), the
// caching allocator's reuse, the convolution workspace kept for live step graphs, the device timers
// (events) and the step profiler's rows timed by them,
// gpu_description() and the NVML utilisation monitor (runs everywhere: "n/a" without NVML).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <thread>

#include "core/backend.h"
#include "core/error.h"
#include "core/gpu_info.h"
#include "core/gpu_monitor.h"
#include "core/graph.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"
#include "train/step_profiler.h"
#ifdef DSC_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

using namespace dsc;
using namespace dsc::test;

TEST_CASE("cuda availability is reported without throwing") {
  bool available = false;
  CHECK_NOTHROW(available = device_available(Device::CUDA));
  if (!available) {
    const std::string reason = device_unavailable_reason(Device::CUDA);
    MESSAGE("CUDA backend unavailable: ", reason);
    CHECK(!reason.empty());
    CHECK(reason.find("--device cpu") != std::string::npos);
    CHECK_THROWS_AS(kernels(Device::CUDA), dsc::Error);
    return;
  }
  const KernelTable& t = kernels(Device::CUDA);
  CHECK(t.device == Device::CUDA);
  // Every entry of the list (core/kernel_list.h) the CUDA backend provides is set, and no other.
  int entries = 0;
#define DSC_KERNEL(name, ret, params, need)                                                  \
  ++entries;                                                                                 \
  CHECK_MESSAGE((t.name != nullptr) == backend_provides(Device::CUDA, #name), #name " is ", \
                t.name ? "set" : "null");
#include "core/kernel_list.h"
  CHECK(entries == int(std::size(kKernelEntries)));
  CHECK(missing_required_entries(t).empty());
}

TEST_CASE("gpu_description says what is there") {
  std::string d;
  CHECK_NOTHROW(d = gpu_description());
  CHECK(!d.empty());
  MESSAGE(d);
}

TEST_CASE("gpu monitor samples or reports n/a") {
  GpuMonitor mon(0, 20);
  if (!mon.available()) {
    CHECK(!mon.unavailable_reason().empty());
    mon.start();
    const GpuUtilization u = mon.stop();
    CHECK(!u.valid);
    CHECK(u.str() == "n/a");
    return;
  }
  mon.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const GpuUtilization u = mon.stop();
  CHECK(u.valid);
  CHECK(u.samples >= 1);
  CHECK(u.sm_percent >= 0);
  CHECK(u.sm_percent <= 100);
  CHECK(u.memory_percent >= 0);
  CHECK(u.memory_percent <= 100);
  MESSAGE("idle GPU: ", u.str());
}

TEST_CASE("cuda copies: host <-> device round trips, views, device to device" *
          doctest::skip(no_cuda())) {
  std::mt19937_64 rng(11);
  // 40 MiB of f32: more than two 16 MiB staging chunks.
  Tensor big = Tensor::uniform({10 * 1024 * 1024 + 3}, rng, -1, 1);
  Tensor dev = big.to(Device::CUDA);
  CHECK(dev.device() == Device::CUDA);
  check_close(dev.to(Device::CPU), big, 0, "round trip of 40 MiB");
  // Device to device, then a view (slice) copied back.
  Tensor dup = dev.clone();
  check_close(dup.slice0(1000, 2000).to(Device::CPU), big.slice0(1000, 2000), 0,
              "slice of a clone");
  // copy_ into a view of a device tensor from the host, with a dtype change.
  Tensor half = Tensor::uniform({4, 5}, rng, -1, 1, DType::F64);
  Tensor target = Tensor::zeros({10, 5}, DType::F32, Device::CUDA);
  Tensor view = target.slice0(3, 7);
  view.copy_(half);
  const std::vector<double> t = target.to_vector(), h = half.to_vector();
  CHECK(t[14] == 0.0);
  CHECK(t[15] == static_cast<float>(h[0]));
  CHECK(t[34] == static_cast<float>(h[19]));
  CHECK(t[35] == 0.0);
  // i32 labels survive the trip.
  Tensor labels = Tensor::from({3, 1, 4, 1, 5, 9, 2}, {7}, DType::I32);
  check_close(labels.to(Device::CUDA).to(Device::CPU), labels, 0, "i32 labels");
  cuda_table().synchronize();  // nothing pending, but the entry must work
}

TEST_CASE(
    "cuda device timers: time between markers in stream order, the step profiler's rows on them" *
    doctest::skip(no_cuda())) {
  CHECK_FALSE(StepProfiler(Device::CPU).device_timers());  // host clock there
  const KernelTable& k = cuda_table();
  REQUIRE(bool(k.timer_mark));
  std::mt19937_64 rng(3);
  Tensor a = Tensor::uniform({4 * 1024 * 1024}, rng, -1, 1).to(Device::CUDA);
  void* m0 = k.timer_mark();
  k.fill(a, 1.0);  // 16 MiB written between m0 and m1
  k.scale(a, 0.5);
  void* m1 = k.timer_mark();
  void* m2 = k.timer_mark();
  const double s01 = k.timer_seconds(m0, m1), s12 = k.timer_seconds(m1, m2);
  const double s02 = k.timer_seconds(m0, m2);
  CHECK(s01 > 0);
  CHECK(s12 >= 0);
  CHECK(std::abs(s02 - (s01 + s12)) < 1e-5);  // events' resolution is about a microsecond
  for (void* m : {m0, m1, m2}) k.timer_release(m);
  CHECK(a.to(Device::CPU).to_vector()[12345] == 0.5);

  StepProfiler p(Device::CUDA);
  CHECK(p.device_timers());
  for (int step = 0; step < 2; ++step) {
    p.begin_step();
    p.mark("work");
    k.fill(a, 2.0);
    k.scale(a, 3.0);
    p.mark("nothing");
    p.mark("more work");
    k.scale(a, 0.5);
    p.end_step();
  }
  REQUIRE(p.step_seconds().size() == 2);
  double rows = 0;
  for (const auto& r : p.rows()) {
    REQUIRE(r.seconds.size() == 2);
    CHECK(r.seconds[1] >= 0);
    rows += r.seconds[1];
  }
  const auto& row = [&](const char* name) {
    return *std::find_if(p.rows().begin(), p.rows().end(),
                         [&](const auto& r) { return r.name == name; });
  };
  CHECK(row("work").seconds[1] > 0);
  CHECK(row("more work").seconds[1] > 0);
  CHECK(std::abs(p.step_seconds()[1] - rows) < 1e-5);  // no time before the first mark here
  CHECK(a.to(Device::CPU).to_vector()[7] == 3.0);
}

TEST_CASE("cuda host->device copies are ordered with the kernels around them" *
          doctest::skip(no_cuda())) {
  // copy_bytes host->device returns before the data is on the GPU. Check that (1) the host buffer
  // can be overwritten at once, (2) kernels queued afterwards see the data, including after the
  // staging ring (4 slots) has wrapped around several times and grown (sizes up to 20 MiB, above
  // its 16 MiB chunk), and (3) an upload into a block the allocator recycled from a tensor that
  // queued kernels still read does not change what those kernels see.
  std::mt19937_64 rng(12);
  const int64_t sizes[] = {7, 1000, 300000, 5 * 1024 * 1024 + 11, 1000, 7, 123457, 64, 99, 3};
  Tensor acc_cpu = Tensor::zeros({5 * 1024 * 1024 + 11});
  Tensor acc = acc_cpu.to(Device::CUDA);
  std::vector<float> host;
  for (int64_t n : sizes) {
    const Tensor src = Tensor::uniform({n}, rng, -1, 1);
    host.assign(src.data<float>(), src.data<float>() + n);
    Tensor dev = Tensor::empty({n}, DType::F32, Device::CUDA);
    cuda_table().copy_bytes(dev.raw(), Device::CUDA, host.data(), Device::CPU, n * 4);
    std::fill(host.begin(), host.end(), 1e30f);  // the staging copy must not see this
    Tensor dst = acc.slice0(0, n);
    cuda_table().axpy(dev, 1.0, dst);
    Tensor ref = acc_cpu.slice0(0, n);
    cpu_table().axpy(src, 1.0, ref);
  }
  check_close(acc.to(Device::CPU), acc_cpu, 1e-6, "sum of 10 uploads");

  const int64_t n = 4 * 1024 * 1024;
  const Tensor a_cpu = Tensor::uniform({n}, rng, -1, 1);
  Tensor a = a_cpu.to(Device::CUDA);
  Tensor total = Tensor::zeros({n}, DType::F32, Device::CUDA);
  for (int i = 0; i < 20; ++i) cuda_table().axpy(a, 1.0, total);  // queued, reading a
  a = Tensor();                                                   // block back in the cache
  const Tensor b_cpu = Tensor::uniform({n}, rng, 5, 6);
  Tensor b = b_cpu.to(Device::CUDA);  // likely the same block
  cuda_table().axpy(b, 1.0, total);
  Tensor want = Tensor::zeros({n});
  for (int i = 0; i < 20; ++i) cpu_table().axpy(a_cpu, 1.0, want);
  cpu_table().axpy(b_cpu, 1.0, want);
  check_close(total.to(Device::CPU), want, 1e-5, "kernels queued before a recycled upload");
}

TEST_CASE("cuda timing: a host->device copy does not wait for queued kernels" *
          doctest::skip(no_real_gpu())) {
  // About 10 x 1.1 TFLOP of f32 GEMM (tens to hundreds of ms on any GPU) queued, then a 1 MiB
  // upload: it must return long before the GEMMs finish (a synchronising copy would wait for them).
  // Timing only: the values are constants. Skipped under the host emulator.
  using Clock = std::chrono::steady_clock;
  const Tensor x = Tensor::full({8192, 8192}, 0.5, DType::F32, Device::CUDA);
  const Tensor w = Tensor::full({8192, 8192}, 0.25, DType::F32, Device::CUDA);
  const Tensor b;
  (void)ops::linear(x, w, b);  // warm-up: cuBLAS handle and kernel load
  std::vector<float> host(256 * 1024, 1.5f);
  Tensor dev = Tensor::empty({256 * 1024}, DType::F32, Device::CUDA);
  // Warm-up of the staging ring: every slot big enough for the upload, so none grows (which
  // waits for the GPU) inside the timed window.
  for (int i = 0; i < 8; ++i)
    cuda_table().copy_bytes(dev.raw(), Device::CUDA, host.data(), Device::CPU, host.size() * 4);
  cuda_table().synchronize();
#ifdef DSC_HAVE_CUDA
  const int64_t grows_before = cuda::staging_stats().slot_grows;
#endif
  const auto t0 = Clock::now();
  std::vector<Tensor> keep;
  for (int i = 0; i < 10; ++i) keep.push_back(ops::linear(x, w, b));
  const auto t1 = Clock::now();
  cuda_table().copy_bytes(dev.raw(), Device::CUDA, host.data(), Device::CPU, host.size() * 4);
  const auto t2 = Clock::now();
  cuda_table().synchronize();
  const auto t3 = Clock::now();
  const double upload_s = std::chrono::duration<double>(t2 - t1).count();
  const double total_s = std::chrono::duration<double>(t3 - t0).count();
  MESSAGE("queued GEMMs + upload + wait: ", total_s * 1e3, " ms; the upload call: ",
          upload_s * 1e3, " ms");
  CHECK(upload_s < 0.25 * total_s);
  CHECK(dev.to_vector()[12345] == 1.5);
#ifdef DSC_HAVE_CUDA
  CHECK(cuda::staging_stats().slot_grows == grows_before);
#endif
}

TEST_CASE("cuda host->device staging slots grow only for larger copies, to powers of two" *
          doctest::skip(no_cuda())) {
#ifdef DSC_HAVE_CUDA
  std::vector<float> host(100 * 1000 + 7, 0.25f);  // 400,028 bytes: slots of at least 512 KiB
  Tensor dev = Tensor::empty({int64_t(host.size())}, DType::F32, Device::CUDA);
  auto upload = [&](size_t n) {
    cuda_table().copy_bytes(dev.raw(), Device::CUDA, host.data(), Device::CPU, n * 4);
  };
  for (int i = 0; i < 4; ++i) upload(host.size());  // each of the 4 slots once
  const cuda::StagingStats warm = cuda::staging_stats();
  CHECK(warm.slot_bytes >= host.size() * 4);
  CHECK((warm.slot_bytes & (warm.slot_bytes - 1)) == 0);                // a power of two
  for (int i = 0; i < 12; ++i) upload(host.size() - size_t(i) * 1000);  // same size or smaller
  const cuda::StagingStats after = cuda::staging_stats();
  CHECK(after.slot_grows == warm.slot_grows);
  CHECK(after.host_to_device_copies == warm.host_to_device_copies + 12);
  CHECK(dev.to_vector()[100] == 0.25);
  // Twice the size: the next slot grows once, to the next power of two that holds it.
  std::vector<float> big(2 * host.size(), -0.5f);
  Tensor dev2 = Tensor::empty({int64_t(big.size())}, DType::F32, Device::CUDA);
  cuda_table().copy_bytes(dev2.raw(), Device::CUDA, big.data(), Device::CPU, big.size() * 4);
  CHECK(cuda::staging_stats().slot_grows ==
        after.slot_grows + (after.slot_bytes >= big.size() * 4 ? 0 : 1));
  CHECK(dev2.to_vector()[big.size() - 1] == -0.5);
#endif
}

TEST_CASE("cuda workspace: a grown workspace keeps the old block while a step graph may use it" *
          doctest::skip(no_cuda() || !StepGraph::supported(Device::CUDA))) {
#ifdef DSC_HAVE_CUDA
  // A convolution captured in a graph keeps the workspace pointer it was captured with; a later
  // shape (an evaluation batch, a partial batch) that needs more workspace must not hand that
  // block to anyone else while the graph lives.
  std::mt19937_64 rng(21);
  const ConvShape s{2, 3, 9, 9, 4, 3, 3, 1, 1, 1};
  const Tensor x_cpu = randn({2, 3, 9, 9}, rng), w_cpu = randn({4, 3, 3, 3}, rng);
  const Tensor x = on_gpu(x_cpu), w = on_gpu(w_cpu);
  Tensor y = poisoned({2, 4, 9, 9});
  cuda_table().conv2d_forward(s, x, w, nullptr, y);  // eager: algorithm search, workspace sized
  const void* old = cuda::workspace(0);
  const cuda::WorkspaceStats before = cuda::workspace_stats();
  REQUIRE(before.retired_bytes == 0);
  {
    StepGraph g(Device::CUDA);
    REQUIRE_MESSAGE(g.capture([&] { cuda_table().conv2d_forward(s, x, w, nullptr, y); }),
                    g.failure());
    const size_t grown = std::max<size_t>(before.bytes, 1024) * 4;
    void* fresh = cuda::workspace(grown);  // a later, larger shape
    CHECK(fresh != old);
    const cuda::WorkspaceStats during = cuda::workspace_stats();
    CHECK(during.bytes == grown);
    CHECK(during.retired_bytes == before.bytes);
    // The old block is not on the free lists: an allocation of its size gets another block.
    void* other = cuda::alloc(before.bytes);
    CHECK(other != old);
    cuda::free(other);
    Tensor y_cpu = cpu_out({2, 4, 9, 9});
    cpu_table().conv2d_forward(s, x_cpu, w_cpu, nullptr, y_cpu);
    y.fill_(std::numeric_limits<double>::quiet_NaN());
    g.replay();
    check_close(y.to(Device::CPU), y_cpu, rtol_for(DType::F32), "replayed convolution");
  }
  // The graph is gone: the old block is freed.
  CHECK(cuda::workspace_stats().retired_bytes == 0);
  // Without a live graph, growing frees the old block at once.
  const size_t now = cuda::workspace_stats().bytes;
  (void)cuda::workspace(now * 2);
  CHECK(cuda::workspace_stats().retired_bytes == 0);
#endif
}

TEST_CASE("cuda allocator reuses freed blocks" * doctest::skip(no_cuda())) {
  { Tensor warm = Tensor::empty({12345}, DType::F32, Device::CUDA); }
#ifdef DSC_HAVE_CUDA
  const cuda::AllocatorStats before = cuda::allocator_stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({12345}, DType::F32, Device::CUDA);  // same size class every time
  }
  const cuda::AllocatorStats after = cuda::allocator_stats();
  CHECK(after.cuda_mallocs == before.cuda_mallocs);
  CHECK(after.cache_hits >= before.cache_hits + 10);
  CHECK(after.in_use_bytes == before.in_use_bytes);
  const size_t released = cuda::release_cached_memory();
  CHECK(released >= size_t(12345) * 4);
  CHECK(cuda::allocator_stats().cached_bytes == 0);
  // Still usable after a release.
  Tensor t = Tensor::full({777}, 2.5, DType::F32, Device::CUDA);
  CHECK(t.to_vector()[776] == 2.5);
#endif
}
