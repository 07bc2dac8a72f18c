// A one-paragraph description of the GPU the CUDA backend would use (name, compute capability,
// driver / runtime / cuDNN / cuBLAS versions, warnings), or why there is none. Safe in every build:
// with the CUDA backend it is implemented in core/cuda/device_info.cu, without it by
// core/gpu_info_fallback.cpp ("no CUDA backend in this build"). No CUDA headers here.
#pragma once

#include <string>

namespace dsc {

std::string gpu_description();

}  // namespace dsc
