// The per-device kernel table. Differentiable ops (core/ops.h) allocate outputs and call the
// kernels of their inputs' device through this table; a backend fills its table in one explicit
// registration call (register_cpu_kernels, register_cuda_kernels), so adding a device touches no
// layer code and needs no static-initialiser tricks.
//
// The entries, their signatures and contracts are ONE list, core/kernel_list.h; this header makes
// the table from it, says which optional entries each backend leaves out (backend_provides), and
// registers backends with a completeness check (register_backend). Tested in
// tests/core/test_kernel_list.cpp and tests/cuda/test_cuda_runtime.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/cpu/conv2d.h"
#include "core/cpu/depsep_conv2d.h"
#include "core/tensor.h"

namespace dsc {

// The optimizer entries can take their step-dependent inputs from one-element f32 tensors on the
// device instead of host values, so that a mixed-precision step needs no host synchronisation:
// found_inf (skip the whole update, leaving every buffer bit-identical, when its value is not 0),
// scale (divide the gradients by its value instead of grad_scale) and step_count (the number of
// updates applied so far, to which the entry adds 1 unless it skipped; exact up to 2^24 updates;
// Adam's t = count + 1). A null pointer means the host value.
struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;
  float weight_decay = 0.0f;  // decoupled (AdamW), multiplied by lr
  int64_t step = 1;           // 1-based, for bias correction (when step_count is null)
  float grad_scale = 1.0f;    // gradients are divided by this first (loss-scale unscaling)
  const Tensor* found_inf = nullptr;
  const Tensor* scale = nullptr;
  Tensor* step_count = nullptr;
};

struct SgdParams {
  float lr = 0.01f, momentum = 0.0f, weight_decay = 0.0f;  // decoupled weight decay
  bool nesterov = false;
  float grad_scale = 1.0f;
  const Tensor* found_inf = nullptr;  // as in AdamParams
  const Tensor* scale = nullptr;
  Tensor* step_count = nullptr;  // counted (+1 unless skipped), not used by the arithmetic
};

// Dynamic loss scaling with ATen's GradScaler rule (see optim/loss_scaler.h).
struct LossScaleParams {
  float growth = 2.0f, backoff = 0.5f;
  int64_t growth_interval = 2000;
};

struct BatchNormParams {
  float momentum = 0.99f;  // Keras convention: running = momentum * running + (1 - momentum) * batch
  float eps = 1e-3f;
};

// Whether every backend must provide an entry (the last argument of each entry of the list).
enum class KernelNeed { required, optional };

struct KernelTable {
  Device device = Device::CPU;
  bool available = false;
  std::string unavailable_reason;
  // The depsep_conv2d entries keep the ReLU mask as bits (their relu_mask argument) rather than
  // reading y again in the backward.
  bool depsep_relu_bits = false;

  // One function pointer per entry of core/kernel_list.h (where each contract is written), null
  // until the backend's registration sets it.
#define DSC_KERNEL(name, ret, params, need) ret(*name) params = nullptr;
#include "core/kernel_list.h"
};

// The list's entries in order: name and need.
struct KernelEntry {
  std::string_view name;
  KernelNeed need;
};
inline constexpr KernelEntry kKernelEntries[] = {
#define DSC_KERNEL(name, ret, params, need) {#name, KernelNeed::need},
#include "core/kernel_list.h"
};

constexpr bool is_kernel_entry(std::string_view name) {
  for (const KernelEntry& e : kKernelEntries)
    if (e.name == name) return true;
  return false;
}

// The optional entries the CPU backend does not provide (it has no graphs, no device timers, no
// combined conv2d backward and no library algorithms to report). The CUDA backend provides every
// entry.
inline constexpr std::array<std::string_view, 11> kCpuNotProvided = {
    "graph_supported", "graph_begin",   "graph_end",       "graph_abort",
    "graph_replay",    "graph_release", "timer_mark",      "timer_seconds",
    "timer_release",   "conv2d_backward", "algorithm_report"};

// Whether `device`'s backend provides `entry`: every entry except the ones it lists above. Its
// registration sets exactly these entries; the tests check its table against the same answer.
constexpr bool backend_provides(Device device, std::string_view entry) {
  if (device == Device::CPU)
    for (std::string_view n : kCpuNotProvided)
      if (n == entry) return false;
  return true;
}

template <size_t N>
constexpr bool names_known(const std::array<std::string_view, N>& names) {
  for (std::string_view n : names)
    if (!is_kernel_entry(n)) return false;
  return true;
}
static_assert(names_known(kCpuNotProvided), "kCpuNotProvided names an entry that is not in the list");

// A backend's registration, generated from the list: in the body of register_<backend>_kernels,
//   #define DSC_KERNEL(name, ret, params, need) DSC_REGISTER_ENTRY(t, Device::CPU, cpu, name, need)
//   #include "core/kernel_list.h"
// sets every entry the backend provides to the function of the entry's name in namespace `ns`
// (t.fill = cpu::fill); a required entry the backend claims not to provide is a compile error
// naming it, and a provided entry without a definition is a link error naming the function.
#define DSC_REGISTER_ENTRY(table, device, ns, name, need)                                         \
  static_assert(::dsc::KernelNeed::need == ::dsc::KernelNeed::optional ||                         \
                    ::dsc::backend_provides(device, #name),                                       \
                "a backend must provide the required kernel-table entry " #name);                \
  if constexpr (::dsc::backend_provides(device, #name)) table.name = ns::name;

// The table of a device; throws with the reason when that backend is not available.
const KernelTable& kernels(Device device);
// Whether a backend is compiled in and usable (e.g. CUDA built and a GPU present).
bool device_available(Device device);
std::string device_unavailable_reason(Device device);

// Registers a backend into `table` (fresh) and checks the result: `registration` fills the table
// and says whether the backend is available; an available table that leaves a REQUIRED entry null
// is then made unavailable, with a reason naming the backend and every missing entry (ending in
// "use --device cpu" for a device other than the CPU), so that kernels() refuses it with that
// reason and no null entry is ever called. kernels() registers each device this way on first use.
void register_backend(KernelTable& table, Device device, void (*registration)(KernelTable&));
// The required entries `table` leaves null, in list order.
std::vector<std::string_view> missing_required_entries(const KernelTable& table);

// The backends' registration calls (core/backend_cpu.cpp, core/cuda/backend_cuda.cu).
void register_cpu_kernels(KernelTable& table);
void register_cuda_kernels(KernelTable& table);  // sets available = false without a GPU

}  // namespace dsc
