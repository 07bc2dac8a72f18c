// The public CUDA interop functions (core/cuda_interop.h) with the CUDA backend; without it they
// are core/cuda_interop_fallback.cpp. Tested in tests/cuda/test_cuda_function.cpp.
#include "core/backend.h"
#include "core/cuda/runtime.h"
#include "core/cuda_interop.h"
#include "core/error.h"

namespace dsc {

bool built_with_cuda() { return true; }

bool cuda_available() { return device_available(Device::CUDA); }

void* cuda_stream() {
  kernels(Device::CUDA);  // throws with the reason when there is no usable GPU
  return static_cast<void*>(cuda::compute_stream());
}

void cuda_check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  DSC_CHECK(e == cudaSuccess, "CUDA launch of ", what, " failed: ", cudaGetErrorString(e), " (",
            int(e), ")");
  if (cuda::sync_after_launch()) {
    const cudaError_t s = cudaStreamSynchronize(cuda::compute_stream());
    DSC_CHECK(s == cudaSuccess, "CUDA kernel ", what,
              " failed (DSC_CUDA_SYNC): ", cudaGetErrorString(s), " (", int(s), ")");
  }
}

}  // namespace dsc
