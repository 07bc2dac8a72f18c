// The one op list (core/kernel_list.h) and registration: the CPU table holds exactly the entries
// the CPU backend provides (one check per entry, generated from the list), and registration refuses
// a table that leaves any required entry null, naming the backend and the entry (for a GPU backend
// as an unavailable reason ending in "use --device cpu", the way its other start failures read).
#include <doctest/doctest.h>

#include <iterator>
#include <string>
#include <string_view>

#include "check.h"
#include "core/backend.h"

namespace dsc {
namespace {

// The CPU backend's registration with one entry taken out afterwards.
template <auto Entry>
void cpu_without(KernelTable& t) {
  register_cpu_kernels(t);
  t.*Entry = nullptr;
}

// Registers `registration` for `device` and checks that it is refused, naming `entry`.
void check_refused(Device device, void (*registration)(KernelTable&), std::string_view entry) {
  KernelTable t;
  register_backend(t, device, registration);
  CHECK_MESSAGE(!t.available, "a table without ", entry, " was accepted");
  const std::string& why = t.unavailable_reason;
  CHECK_MESSAGE(why.find(std::string(entry)) != std::string::npos, why);
  CHECK_MESSAGE(why.find(device_name(device)) != std::string::npos, why);
}

TEST_CASE("kernel list: the CPU table holds every entry the CPU backend provides, and only those") {
  const KernelTable& t = kernels(Device::CPU);
  int entries = 0;
#define DSC_KERNEL(name, ret, params, need)                                                 \
  ++entries;                                                                                \
  CHECK_MESSAGE((t.name != nullptr) == backend_provides(Device::CPU, #name), #name " is ", \
                t.name ? "set" : "null");
#include "core/kernel_list.h"
  CHECK(entries == int(std::size(kKernelEntries)));
  CHECK(missing_required_entries(t).empty());
}

TEST_CASE("kernel list: registration refuses a table with a required entry missing, naming it") {
  // A complete table passes, and so does one without an optional entry.
  KernelTable complete;
  register_backend(complete, Device::CPU, register_cpu_kernels);
  CHECK(complete.available);
  CHECK(complete.unavailable_reason.empty());
  KernelTable partial;
  register_backend(partial, Device::CPU, cpu_without<&KernelTable::depsep_conv2d_forward>);
  CHECK(partial.available);

  // One missing entry: the reason names the backend and the entry, and kernels()-style use fails.
  KernelTable t;
  register_backend(t, Device::CPU, cpu_without<&KernelTable::relu_forward>);
  CHECK_FALSE(t.available);
  CHECK(t.unavailable_reason ==
        "the cpu backend failed to start: its registration left the required entry relu_forward "
        "of the kernel table (core/kernel_list.h) unset");
  CHECK(missing_required_entries(t) == std::vector<std::string_view>{"relu_forward"});

  // The same for a GPU backend: an unavailable reason like its other start failures.
  check_refused(Device::CUDA, cpu_without<&KernelTable::adam_step>, "adam_step");
  KernelTable g;
  register_backend(g, Device::CUDA, cpu_without<&KernelTable::adam_step>);
  CHECK(g.unavailable_reason.ends_with("; use --device cpu"));

  // Every required entry of the list, taken out one at a time, is caught and named.
  int required = 0;
#define DSC_KERNEL(name, ret, params, need)                          \
  if (KernelNeed::need == KernelNeed::required) {                    \
    ++required;                                                      \
    check_refused(Device::CPU, cpu_without<&KernelTable::name>, #name); \
  }
#include "core/kernel_list.h"
  // The loop above visited every required entry of the list.
  int listed_required = 0;
  for (const KernelEntry& e : kKernelEntries) listed_required += e.need == KernelNeed::required;
  CHECK(required == listed_required);
  CHECK(required > 0);
}

}  // namespace
}  // namespace dsc
