// gpu_description() for builds without the CUDA backend (see core/gpu_info.h); with it, the
// definition lives in core/cuda/device_info.cu and this file compiles to nothing.
#include "core/gpu_info.h"

#ifndef DSC_HAVE_CUDA
namespace dsc {

std::string gpu_description() { return "no CUDA backend in this build"; }

}  // namespace dsc
#endif
