// core/cuda_interop.h for builds without the CUDA backend; with it, the definitions live in
// core/cuda/interop.cu and this file compiles to nothing.
#include <string>

#include "core/backend.h"
#include "core/cuda_interop.h"
#include "core/error.h"

#ifndef DSC_HAVE_CUDA
namespace dsc {

bool built_with_cuda() { return false; }

bool cuda_available() { return false; }

void* cuda_stream() { throw Error("cuda_stream(): " + device_unavailable_reason(Device::CUDA)); }

void cuda_check_launch(const char* what) {
  throw Error(std::string("cuda_check_launch(") + what +
              "): " + device_unavailable_reason(Device::CUDA));
}

}  // namespace dsc
#endif
