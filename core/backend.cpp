// The kernel-table registry (see backend.h): each table is filled once, on first use, by its
// backend's explicit registration call.
#include "core/backend.h"

#include <mutex>

#include "core/error.h"

namespace dsc {
namespace {
KernelTable& table_slot(Device d) {
  static KernelTable tables[2];
  static std::once_flag once[2];
  const int i = d == Device::CPU ? 0 : 1;
  std::call_once(once[i], [&] {
    tables[i].device = d;
    if (d == Device::CPU) {
      register_cpu_kernels(tables[i]);
    } else {
#ifdef DSC_HAVE_CUDA
      register_cuda_kernels(tables[i]);
#else
      tables[i].available = false;
      tables[i].unavailable_reason =
          "this build has no CUDA backend (configured without nvcc/cuDNN or with -DDSC_CUDA=OFF); "
          "use --device cpu";
#endif
    }
  });
  return tables[i];
}
}  // namespace

const KernelTable& kernels(Device device) {
  const KernelTable& t = table_slot(device);
  DSC_CHECK(t.available, device_name(device), " backend unavailable: ", t.unavailable_reason);
  return t;
}

bool device_available(Device device) { return table_slot(device).available; }

std::string device_unavailable_reason(Device device) {
  return table_slot(device).unavailable_reason;
}

}  // namespace dsc
