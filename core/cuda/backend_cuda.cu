// The CUDA kernel table: register_cuda_kernels() checks that a usable GPU is present and sets every
// entry of the list (core/kernel_list.h) to the function of its name in dsc::cuda (kernels.h; the
// list's sections name the .cu file of each). It never throws: without a driver, without a GPU, or
// when this build has no kernel image for the GPU's architecture, it leaves the table unavailable
// with a reason that ends in "use --device cpu" (so does register_backend when an entry is
// missing). Tested by tests/cuda/ (every entry against the CPU table; on a machine without a GPU,
// the availability test checks the reason and every other test is skipped).
#include <cstdio>
#include <exception>
#include <string>

#include "core/backend.h"
#include "core/cuda/check.h"
#include "core/cuda/device_info.h"
#include "core/cuda/kernels.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace dsc {
namespace {

// Empty when the GPU can run this build's kernels; otherwise why not.
std::string probe_device() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return detail::cat("no CUDA device found (cudaGetDeviceCount: ",
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices",
                       "); use --device cpu");
  }
  const cuda::DeviceInfo info = cuda::device_info();
  if (!info.available)
    return detail::cat("CUDA initialisation failed (", info.error, "); use --device cpu");
  // 1. The compute capability against the architectures compiled in (needs no kernel).
  if (!cuda::arch_supported(info)) return cuda::no_kernel_image_reason(info);
  // 2. Load one kernel. This registration may run during static initialisation, before the static
  //    constructors that register this library's kernels with the runtime (e.g. when a doctest
  //    decorator calls device_available in a test file): the kernel is then unknown to the runtime
  //    (cudaErrorInvalidDeviceFunction) and the check is left to the first launch (check_launch
  //    reports a missing kernel image the same way).
  cudaFuncAttributes attr{};
  e = cudaFuncGetAttributes(&attr, cuda::probe_kernel());
  (void)cudaGetLastError();
  if (e == cudaSuccess || e == cudaErrorInvalidDeviceFunction) return {};
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion ||
      e == cudaErrorInvalidPtx)
    return detail::cat(cuda::no_kernel_image_reason(info), " (", cudaGetErrorString(e), ")");
  return detail::cat("CUDA initialisation failed on ", info.name,
                     " (cudaFuncGetAttributes: ", cudaGetErrorString(e), "); use --device cpu");
}

}  // namespace

void register_cuda_kernels(KernelTable& t) {
  t.device = Device::CUDA;
  t.available = false;
  try {
    t.unavailable_reason = probe_device();
    if (!t.unavailable_reason.empty()) return;

    for (const std::string& w : cuda::device_info().warnings)
      std::fprintf(stderr, "dsc: warning: %s\n", w.c_str());

    // Every entry of core/kernel_list.h: t.fill = cuda::fill, ...
#define DSC_KERNEL(name, ret, params, need) DSC_REGISTER_ENTRY(t, Device::CUDA, cuda, name, need)
#include "core/kernel_list.h"

    t.unavailable_reason.clear();
    t.available = true;
  } catch (const std::exception& e) {
    t.available = false;
    t.unavailable_reason =
        detail::cat("the CUDA backend failed to start (", e.what(), "); use --device cpu");
  }
}

}  // namespace dsc
