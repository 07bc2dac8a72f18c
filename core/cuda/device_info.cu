// device_info() and gpu_description() (see device_info.h and core/gpu_info.h): queries device 0's
// properties and the driver, runtime, cuDNN and cuBLAS versions without throwing, and formats them.
// The architectures built come from nvcc's __CUDA_ARCH_LIST__ (e.g. 800,900).
// Tested (runs and says something sensible with or without a GPU) in
// tests/cuda/test_cuda_runtime.cpp.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <sstream>
#include <string>

#include "core/backend.h"
#include "core/cuda/device_info.h"
#include "core/gpu_info.h"

#define DSC_STRINGIFY2(...) #__VA_ARGS__
#define DSC_STRINGIFY(...) DSC_STRINGIFY2(__VA_ARGS__)

namespace dsc::cuda {
namespace {

// "800,900" -> {80, 90}.
std::vector<int> parse_arch_list(const std::string& list) {
  std::vector<int> out;
  std::string item;
  std::istringstream in(list);
  while (std::getline(in, item, ',')) {
    const int v = std::atoi(item.c_str());
    if (v > 0) out.push_back(v / 10);
  }
  return out;
}

// {80, 90} -> "sm_80, sm_90".
std::string format_arch_list(const std::vector<int>& archs) {
  std::string out;
  for (int a : archs) out += (out.empty() ? "sm_" : ", sm_") + std::to_string(a);
  return out.empty() ? "unknown" : out;
}

std::string version3(size_t v) {  // 91900 -> "9.19.0"
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

std::string cuda_version(int v) {  // 13000 -> "13.0"
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace

DeviceInfo device_info() {
  DeviceInfo info;
#ifdef __CUDA_ARCH_LIST__
  info.arch_list = parse_arch_list(DSC_STRINGIFY(__CUDA_ARCH_LIST__));
#endif
  info.architectures_built = format_arch_list(info.arch_list);
  info.cudnn_compiled = CUDNN_VERSION;
  info.cudnn_loaded = cudnnGetVersion();
  info.cublas_compiled = CUBLAS_VERSION;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    info.cublas_loaded = major * 10000 + minor * 100 + patch;
  (void)cudaDriverGetVersion(&info.driver_version);
  (void)cudaRuntimeGetVersion(&info.runtime_version);
  (void)cudaGetLastError();

  if (info.cudnn_loaded / 100 != info.cudnn_compiled / 100)
    info.warnings.push_back("cuDNN " + version3(info.cudnn_loaded) +
                            " is loaded but the build used " + version3(info.cudnn_compiled) +
                            " headers");
  if (info.driver_version != 0 && info.driver_version < info.runtime_version)
    info.warnings.push_back("the driver supports CUDA " + cuda_version(info.driver_version) +
                            ", older than the runtime's " + cuda_version(info.runtime_version));

  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    info.error = e != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e)
                                  : std::string("no CUDA device");
    (void)cudaGetLastError();
    return info;
  }
  cudaDeviceProp prop{};
  const cudaError_t pe = cudaGetDeviceProperties(&prop, 0);
  if (pe != cudaSuccess) {
    info.error = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(pe);
    (void)cudaGetLastError();
    return info;
  }
  info.available = true;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_memory = prop.totalGlobalMem;
  return info;
}

std::string to_string(const DeviceInfo& info) {
  std::ostringstream os;
  if (info.available) {
    os << "GPU 0: " << info.name << " (sm_" << info.cc_major << info.cc_minor << ", "
       << info.sm_count << " SMs, " << (info.total_memory >> 20) << " MiB)\n";
  } else {
    os << "GPU: none (" << info.error << ")\n";
  }
  os << "CUDA driver " << cuda_version(info.driver_version) << ", runtime "
     << cuda_version(info.runtime_version) << "; cuDNN " << version3(info.cudnn_loaded)
     << " (built with " << version3(info.cudnn_compiled) << "); cuBLAS "
     << version3(size_t(info.cublas_loaded)) << " (built with "
     << version3(size_t(info.cublas_compiled)) << ")\n";
  os << "kernels built for " << info.architectures_built;
  for (const std::string& w : info.warnings) os << "\nwarning: " << w;
  return os.str();
}

bool arch_supported(const DeviceInfo& info) {
  if (!info.available || info.arch_list.empty()) return true;
  const int cc = info.cc_major * 10 + info.cc_minor;
  for (int a : info.arch_list)
    if (a <= cc) return true;
  return false;
}

std::string no_kernel_image_reason(const DeviceInfo& info) {
  std::ostringstream os;
  os << "this build has no CUDA kernels for ";
  if (info.available) {
    os << info.name << " (sm_" << info.cc_major << info.cc_minor << ")";
  } else {
    os << "GPU 0";
  }
  os << ": it was compiled for " << info.architectures_built << "; rebuild with "
     << "-DCMAKE_CUDA_ARCHITECTURES=" << (info.available ? info.cc_major * 10 + info.cc_minor : 0)
     << " or use --device cpu";
  return os.str();
}

}  // namespace dsc::cuda

namespace dsc {

std::string gpu_description() {
  std::string s = cuda::to_string(cuda::device_info());
  if (!device_available(Device::CUDA))
    s += "\nCUDA backend unavailable: " + device_unavailable_reason(Device::CUDA);
  return s;
}

}  // namespace dsc
