// `bench device` (see bench_device.h): measures the machine's memory bandwidth (a large copy,
// bytes read + written per second) and matrix peak (a large GEMM through the framework, 2 FLOPs
// per multiply-add), each as the median over timed repeats after an untimed warm-up, and reads
// ceilings files back. CPU: memcpy over OpenMP threads and dsc::cpu::gemm (OpenBLAS SGEMM);
// CUDA: Tensor::copy_ device-to-device and ops::linear on f16 (cuBLAS) — compiled everywhere,
// run only where a GPU is present. Tested in tests/apps/test_bench.cpp (CPU, small sizes).
#include "apps/lib/bench_device.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/error.h"
#include "core/gpu_info.h"
#include "core/ops.h"

namespace dsc::bench {
namespace {

using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::unique_ptr<char, FreeDeleter> aligned_bytes(size_t bytes) {
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(4096, rounded);
  if (!p) throw std::bad_alloc();
  return std::unique_ptr<char, FreeDeleter>(static_cast<char*>(p));
}

json stats_json(const TimingStats& t) {
  return {{"median_s", t.median_s},         {"min_s", t.min_s}, {"max_s", t.max_s},
          {"iterations", t.iterations},     {"chunk", t.chunk}, {"repeat_s", t.repeat_s},
          {"per_iteration_s", t.per_iter_s}};
}

// Copies `bytes` from src to dst, one contiguous chunk per OpenMP thread (chunks of whole pages).
void parallel_copy(char* dst, const char* src, size_t bytes, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t pages = (bytes + 4095) / 4096;
    const size_t begin = std::min(bytes, pages * t / nt * 4096);
    const size_t end = std::min(bytes, pages * (t + 1) / nt * 4096);
    if (end > begin) std::memcpy(dst + begin, src + begin, end - begin);
  }
}

json measure_cpu(const DeviceOptions& o) {
  const int threads = o.threads > 0 ? o.threads : cpu::num_threads();
  const size_t bytes = size_t(o.copy_bytes > 0 ? o.copy_bytes : int64_t(256) << 20);
  const int n = int(o.gemm_n > 0 ? o.gemm_n : 2048);
  auto noop = [] {};

  // Bandwidth: both buffers touched by the threads that copy them (first touch), src non-zero.
  auto src = aligned_bytes(bytes), dst = aligned_bytes(bytes);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < int64_t(bytes); ++i) src.get()[i] = char(i * 131 + 7) | 1;
  parallel_copy(dst.get(), src.get(), bytes, threads);
  const CpuTimes t0 = cpu_times_now();
  const TimingStats copy =
      measure([&] { parallel_copy(dst.get(), src.get(), bytes, threads); }, noop, o.timing);
  DSC_CHECK(std::memcmp(dst.get(), src.get(), std::min<size_t>(bytes, 4096)) == 0,
            "bench device: the copy did not copy");
  const double bandwidth = 2.0 * double(bytes) / copy.median_s;
  src.reset();
  dst.reset();

  // Peak: C = A B, n x n x n, random non-zero inputs.
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (float& v : a) v = u(rng);
  for (float& v : b) v = u(rng);
  const TimingStats gemm = measure(
      [&] { cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n); },
      noop, o.timing);
  const double flops = 2.0 * double(n) * n * n;
  const double peak = flops / gemm.median_s;

  json j;
  j["device"] = "cpu";
  j["peak_flops"] = peak;
  j["bandwidth_bytes_per_s"] = bandwidth;
  j["what"] = "bandwidth: memcpy of " + std::to_string(bytes >> 20) + " MiB split over " +
              std::to_string(threads) +
              " threads, (bytes read + written) / median time; peak: OpenBLAS SGEMM " +
              std::to_string(n) +
              "^3 through dsc::cpu::gemm, 2 FLOPs per multiply-add / median "
              "time";
  j["details"] = {{"machine", cpu_model_name()},
                  {"threads", threads},
                  {"copy_bytes", bytes},
                  {"copy", stats_json(copy)},
                  {"bandwidth_bytes_per_s_min", 2.0 * double(bytes) / copy.max_s},
                  {"bandwidth_bytes_per_s_max", 2.0 * double(bytes) / copy.min_s},
                  {"gemm_n", n},
                  {"gemm_dtype", "fp32"},
                  {"gemm", stats_json(gemm)},
                  {"peak_flops_min", flops / gemm.max_s},
                  {"peak_flops_max", flops / gemm.min_s},
                  {"other_cpu_load", other_cpu_load(t0, cpu_times_now())}};
  return j;
}

json measure_cuda(const DeviceOptions& o) {
  const KernelTable& k = kernels(Device::CUDA);  // throws with the reason when there is no GPU
  auto sync = [&k] { k.synchronize(); };
  const int64_t bytes = o.copy_bytes > 0 ? o.copy_bytes : int64_t(1) << 30;
  const int64_t n = o.gemm_n > 0 ? o.gemm_n : 8192;

  const int64_t elems = std::max<int64_t>(1, bytes / 4);
  Tensor src = Tensor::empty({elems}, DType::F32, Device::CUDA);
  Tensor dst = Tensor::empty({elems}, DType::F32, Device::CUDA);
  src.fill_(1.25);
  dst.fill_(0.0);
  const TimingStats copy = measure([&] { dst.copy_(src); }, sync, o.timing);
  const double copied = double(elems) * 4.0;
  const double bandwidth = 2.0 * copied / copy.median_s;
  src = Tensor();
  dst = Tensor();

  std::mt19937_64 rng(7);
  Tensor a = Tensor::randn({n, n}, rng, 1.0, DType::F16).to(Device::CUDA);
  Tensor b = Tensor::randn({n, n}, rng, 1.0, DType::F16).to(Device::CUDA);
  const TimingStats gemm = measure(
      [&] {
        NoGradGuard no_grad;
        Tensor y = ops::linear(a, b, Tensor());  // y = a b^T, n^3 multiply-adds
      },
      sync, o.timing);
  const double flops = 2.0 * double(n) * n * n;

  json j;
  j["device"] = "cuda";
  j["peak_flops"] = flops / gemm.median_s;
  j["bandwidth_bytes_per_s"] = bandwidth;
  j["what"] = "bandwidth: Tensor::copy_ of " + std::to_string(int64_t(copied) >> 20) +
              " MiB between two device tensors (cudaMemcpyAsync device-to-device), (bytes read "
              "+ written) / median time; peak: ops::linear on f16 " +
              std::to_string(n) + " x " + std::to_string(n) +
              " tensors (cuBLAS, f32 accumulation), 2 FLOPs per multiply-add / median time";
  j["details"] = {{"machine", gpu_description()},
                  {"host_cpu", cpu_model_name()},
                  {"copy_bytes", int64_t(copied)},
                  {"copy", stats_json(copy)},
                  {"bandwidth_bytes_per_s_min", 2.0 * copied / copy.max_s},
                  {"bandwidth_bytes_per_s_max", 2.0 * copied / copy.min_s},
                  {"gemm_n", n},
                  {"gemm_dtype", "fp16"},
                  {"gemm", stats_json(gemm)},
                  {"peak_flops_min", flops / gemm.max_s},
                  {"peak_flops_max", flops / gemm.min_s}};
  return j;
}

}  // namespace

json measure_device(const DeviceOptions& o) {
  json j = o.device == Device::CPU ? measure_cpu(o) : measure_cuda(o);
  j["date"] = utc_now_iso8601();
  j["command"] = o.command;
  j["details"]["repeats"] = o.timing.repeats;
  j["details"]["min_time_s"] = o.timing.min_time;
  j["details"]["load_avg_1m"] = load_average_1m();
  return j;
}

std::string default_ceilings_path(Device d) {
  return std::string("bench/results/ceilings_") + device_name(d) + ".json";
}

std::string find_default_ceilings(Device d) {
  const std::string rel = default_ceilings_path(d);
  std::error_code ec;
  if (fs::is_regular_file(rel, ec)) return rel;
  // This file is <root>/apps/lib/bench_device.cpp.
  const fs::path root = fs::path(__FILE__).parent_path().parent_path().parent_path();
  const fs::path in_tree = root / rel;
  if (root.is_absolute() && fs::is_regular_file(in_tree, ec)) return in_tree.string();
  return "";
}

intensity::Ceilings read_ceilings(const std::string& path) {
  std::ifstream in(path);
  DSC_CHECK(in.good(), "--ceilings: cannot open '", path, "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error("--ceilings: '" + path + "' is not valid JSON: " + e.what());
  }
  intensity::Ceilings c;
  for (auto [key, dst] : {std::pair{"peak_flops", &c.peak_flops},
                          std::pair{"bandwidth_bytes_per_s", &c.bandwidth_bytes_per_s}}) {
    DSC_CHECK(j.is_object() && j.contains(key) && j[key].is_number(), "--ceilings: '", path,
              "' has no numeric key \"", key,
              "\" (expected {\"peak_flops\": FLOP/s, \"bandwidth_bytes_per_s\": B/s}, as `bench "
              "device` writes it)");
    *dst = j[key].get<double>();
    DSC_CHECK(*dst > 0, "--ceilings: \"", key, "\" in '", path, "' must be positive, got ",
              j[key].dump());
  }
  return c;
}

}  // namespace dsc::bench
