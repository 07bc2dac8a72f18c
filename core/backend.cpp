// The kernel-table registry (see backend.h): each table is filled once, on first use, by its
// backend's explicit registration call, and checked against the list (core/kernel_list.h).
// Tested in tests/core/test_kernel_list.cpp.
#include "core/backend.h"

#include <mutex>

#include "core/error.h"

namespace dsc {
namespace {

#ifndef DSC_HAVE_CUDA
void register_no_cuda(KernelTable& t) {
  t.available = false;
  t.unavailable_reason =
      "this build has no CUDA backend (configured without nvcc/cuDNN or with -DDSC_CUDA=OFF); "
      "use --device cpu";
}
#endif

KernelTable& table_slot(Device d) {
  static KernelTable tables[2];
  static std::once_flag once[2];
  const int i = d == Device::CPU ? 0 : 1;
  std::call_once(once[i], [&] {
#ifdef DSC_HAVE_CUDA
    register_backend(tables[i], d, d == Device::CPU ? register_cpu_kernels : register_cuda_kernels);
#else
    register_backend(tables[i], d, d == Device::CPU ? register_cpu_kernels : register_no_cuda);
#endif
  });
  return tables[i];
}

}  // namespace

std::vector<std::string_view> missing_required_entries(const KernelTable& t) {
  std::vector<std::string_view> missing;
#define DSC_KERNEL(name, ret, params, need) \
  if (KernelNeed::need == KernelNeed::required && t.name == nullptr) missing.push_back(#name);
#include "core/kernel_list.h"
  return missing;
}

void register_backend(KernelTable& table, Device device, void (*registration)(KernelTable&)) {
  table.device = device;
  registration(table);
  if (!table.available) return;  // e.g. no GPU: the backend's own reason stands
  const std::vector<std::string_view> missing = missing_required_entries(table);
  if (missing.empty()) return;
  std::string names;
  for (std::string_view n : missing) names += detail::cat(names.empty() ? "" : ", ", n);
  table.available = false;
  table.unavailable_reason = detail::cat(
      "the ", device_name(device), " backend failed to start: its registration left the required ",
      missing.size() == 1 ? "entry " : "entries ", names, " of the kernel table (core/kernel_list.h) unset",
      device == Device::CPU ? "" : "; use --device cpu");
}

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
