// The CUDA kernel table (placeholder until the CUDA backend lands): reports itself unavailable.
#include "core/backend.h"

namespace dsc {

void register_cuda_kernels(KernelTable& t) {
  t.device = Device::CUDA;
  t.available = false;
  t.unavailable_reason = "the CUDA backend is not implemented yet; use --device cpu";
}

}  // namespace dsc
