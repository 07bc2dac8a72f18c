// The CPU backend: its memory entries (a caching host allocator) and register_cpu_kernels, which
// fills the table from the list (core/kernel_list.h) with the functions dsc::cpu::<entry> (declared
// in core/cpu/kernels.h, each defined in the _cpu.cpp file of its op). Tested by every CPU test
// and, for the registration itself, in tests/core/test_kernel_list.cpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "core/cpu/kernels.h"
#include "core/error.h"

namespace dsc {
namespace cpu {
namespace {

// A caching allocator: training allocates the same activation sizes every step, and returning
// 64 MB blocks to the OS only to fault them in again costs ~20% of a CPU step. Blocks are kept in
// per-size free lists (sizes rounded up to 64 bytes, or 4 KiB from 1 MiB on) and reused.
struct HostCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  std::unordered_map<void*, size_t> block_size;
};
HostCache& host_cache() {
  static HostCache* cache = new HostCache;  // never destroyed: tensors may outlive main()
  return *cache;
}
size_t round_block(size_t bytes) {
  const size_t align = bytes >= (size_t(1) << 20) ? 4096 : 64;
  return (std::max<size_t>(bytes, 1) + align - 1) / align * align;
}

}  // namespace

void* alloc(size_t bytes) {
  const size_t size = round_block(bytes);
  HostCache& c = host_cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      return p;
    }
  }
  void* p = std::aligned_alloc(64, size);
  DSC_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
  std::lock_guard<std::mutex> lock(c.mutex);
  c.block_size[p] = size;
  return p;
}

void free(void* p) {
  HostCache& c = host_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.free_blocks[c.block_size.at(p)].push_back(p);
}

void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  DSC_CHECK(dd == Device::CPU && sd == Device::CPU, "cpu copy_bytes between devices");
  std::memmove(dst, src, bytes);
}

void synchronize() {}

}  // namespace cpu

void register_cpu_kernels(KernelTable& t) {
  t.device = Device::CPU;
  t.available = true;
  t.depsep_relu_bits = true;
#define DSC_KERNEL(name, ret, params, need) DSC_REGISTER_ENTRY(t, Device::CPU, cpu, name, need)
#include "core/kernel_list.h"
}

}  // namespace dsc
