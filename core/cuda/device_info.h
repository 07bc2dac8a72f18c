// What the CUDA backend runs on: GPU name and compute capability, driver and runtime versions, and
// the cuDNN and cuBLAS versions (compiled against and loaded). This header includes no CUDA
// headers, so apps can print it; it exists only in builds with the CUDA backend — code that must
// also build without CUDA calls gpu_description() from core/gpu_info.h instead.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dsc::cuda {

struct DeviceInfo {
  bool available = false;  // a device was found and queried
  std::string error;       // why not, when !available
  std::string name;        // e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_memory = 0;                      // bytes
  int driver_version = 0;                       // CUDA version the driver supports, e.g. 13000
  int runtime_version = 0;                      // CUDA runtime linked, e.g. 13000
  size_t cudnn_compiled = 0, cudnn_loaded = 0;  // e.g. 91900 (major * 10000 + minor * 100 + patch)
  int cublas_compiled = 0, cublas_loaded = 0;   // e.g. 130100
  std::string architectures_built;              // e.g. "sm_80, sm_90" (from __CUDA_ARCH_LIST__)
  std::vector<int> arch_list;                   // e.g. {80, 90}; empty when unknown
  std::vector<std::string> warnings;            // e.g. cuDNN compile-time != run-time version
};

// Queries device 0 (never throws; failures are reported in `error`).
DeviceInfo device_info();
// A multi-line, human-readable form (one "key: value" per line, warnings last).
std::string to_string(const DeviceInfo& info);

// Whether some architecture this build was compiled for can run on the GPU (true when unknown):
// code for sm_AB runs on GPUs of the same major version A with minor >= B, and PTX is compiled
// just in time for any newer GPU, so the build can serve the GPU if some built arch <= its cc.
bool arch_supported(const DeviceInfo& info);
// "this build has no CUDA kernels for <GPU> (sm_XY): it was compiled for ...; rebuild with
// -DCMAKE_CUDA_ARCHITECTURES=XY or use --device cpu".
std::string no_kernel_image_reason(const DeviceInfo& info);

}  // namespace dsc::cuda
