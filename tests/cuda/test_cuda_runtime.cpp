// The CUDA runtime pieces: availability reporting (runs everywhere: without a GPU it must give a
// reason and refuse cleanly), every table entry filled, host <-> device copies (chunked staging,
// views, device-to-device), the caching allocator's reuse, gpu_description() and the NVML
// utilisation monitor (runs everywhere: "n/a" without NVML).
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>

#include "core/backend.h"
#include "core/error.h"
#include "core/gpu_info.h"
#include "core/gpu_monitor.h"
#include "cuda/cuda_test_util.h"
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
  const void* entries[] = {(const void*)t.alloc,
                           (const void*)t.free,
                           (const void*)t.copy_bytes,
                           (const void*)t.synchronize,
                           (const void*)t.fill,
                           (const void*)t.cast,
                           (const void*)t.axpy,
                           (const void*)t.scale,
                           (const void*)t.mul,
                           (const void*)t.sum,
                           (const void*)t.check_finite,
                           (const void*)t.conv2d_forward,
                           (const void*)t.conv2d_backward_data,
                           (const void*)t.conv2d_backward_filter,
                           (const void*)t.linear_forward,
                           (const void*)t.linear_backward,
                           (const void*)t.relu_forward,
                           (const void*)t.relu_backward,
                           (const void*)t.maxpool_forward,
                           (const void*)t.maxpool_backward,
                           (const void*)t.batchnorm_forward_train,
                           (const void*)t.batchnorm_forward_eval,
                           (const void*)t.batchnorm_backward,
                           (const void*)t.softmax_xent_forward,
                           (const void*)t.softmax_xent_backward,
                           (const void*)t.count_correct,
                           (const void*)t.adam_step,
                           (const void*)t.sgd_step};
  int missing = 0;
  for (const void* e : entries) missing += e == nullptr;
  CHECK(missing == 0);
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
  // 40 MiB of f32: more than one 32 MiB staging chunk.
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
