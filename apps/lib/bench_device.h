// `bench device`: the two roofline ceilings of the machine it runs on, and the ceilings file that
// `bench layer` / `bench sweep` (and `intensity --ceilings`) read back.
//   CPU:  bandwidth = a large memcpy split over the threads (bytes read + written / time);
//         peak      = an n x n x n OpenBLAS SGEMM through dsc::cpu::gemm (2 FLOPs per
//         multiply-add).
//   CUDA: bandwidth = Tensor::copy_ between two device tensors (cudaMemcpyAsync device-to-device,
//         bytes read + written / time);
//         peak      = ops::linear on n x n f16 tensors (cuBLAS, tensor cores, f32 accumulation).
// Each is timed with bench_timing.h's loop (warm-up excluded, median of repeats). The file's keys:
// device, peak_flops (FLOP/s, 2 per multiply-add), bandwidth_bytes_per_s, what, date, command, and
// details (sizes, threads, spreads, machine, load average). Tested in tests/apps/test_bench.cpp.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/lib/bench_timing.h"
#include "apps/lib/intensity.h"
#include "core/tensor.h"

namespace dsc::bench {

struct DeviceOptions {
  Device device = Device::CPU;
  int64_t copy_bytes = 0;  // 0: 256 MiB on the CPU, 1 GiB on CUDA
  int64_t gemm_n = 0;      // 0: 2048 on the CPU, 8192 on CUDA
  TimingOptions timing;
  int threads = 0;  // CPU threads in use (reported)
  std::string command;
};

// Measures both ceilings; throws dsc::Error when the device is unusable.
nlohmann::ordered_json measure_device(const DeviceOptions& o);

// "bench/results/ceilings_<device>.json" (relative to the working directory).
std::string default_ceilings_path(Device d);
// The default file if it exists: first under the working directory, then under the source tree
// this program was built from; "" when neither exists.
std::string find_default_ceilings(Device d);
// Reads peak_flops and bandwidth_bytes_per_s (both positive); dsc::Error naming --ceilings and
// the file otherwise.
intensity::Ceilings read_ceilings(const std::string& path);

}  // namespace dsc::bench
