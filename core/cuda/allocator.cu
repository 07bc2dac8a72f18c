// The caching device allocator (see runtime.h). Requests are rounded up to a size class; a freed
// block goes onto its class's free list and the next request of that class takes it back, so a
// training loop that allocates the same activations every step calls cudaMalloc only during its
// first steps. Reuse is safe without events because every user of device memory runs on the one
// compute stream (a block is reused by work queued after the work that used it).
//
// Size classes: multiples of 512 bytes up to 1 MiB; above that, quarter steps of the enclosing
// power of two (1, 1.25, 1.5, 1.75, 2 MiB, ...), so at most 25% of a large block is padding.
// Tested through tests/cuda/ (every CUDA tensor) and the allocator statistics test there.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"

namespace dsc::cuda {
namespace {

constexpr size_t kSmallStep = 512;
constexpr size_t kSmallLimit = size_t(1) << 20;

size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t pow2 = kSmallLimit;
  while (pow2 * 2 <= bytes) pow2 *= 2;  // largest power of two <= bytes
  const size_t step = pow2 / 4;
  return (bytes + step - 1) / step * step;
}

double mib(size_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

class CachingAllocator {
 public:
  void* alloc(size_t bytes) {
    const size_t size = size_class(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= size;
      ++stats_.cache_hits;
      return hand_out(p, size);
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the (non-sticky) error and retry with the cache released
      release_locked();
      e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      (void)cudaGetLastError();
      throw Error(detail::cat("CUDA out of memory: requested ", bytes, " bytes (", mib(size),
                              " MiB) with ", mib(free_b), " MiB free of ", mib(total_b),
                              " MiB on GPU 0 (this process holds ", mib(in_use_),
                              " MiB in tensors); use a smaller batch (--batch) or "
                              "model, or --device cpu"));
    }
    DSC_CUDA_CHECK(e);
    ++stats_.cuda_mallocs;
    return hand_out(p, size);
  }

  void free(void* p) noexcept {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr, "dsc: cuda free of a pointer not from the caching allocator: %p\n", p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    in_use_ -= size;
    try {
      free_[size].push_back(p);
      cached_ += size;
    } catch (...) {  // out of host memory for the list: give the block back to the driver
      (void)cudaFree(p);
    }
  }

  size_t release() {
    std::lock_guard<std::mutex> lock(mu_);
    return release_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s = stats_;
    s.in_use_bytes = in_use_;
    s.cached_bytes = cached_;
    s.peak_in_use_bytes = peak_;
    return s;
  }

 private:
  void* hand_out(void* p, size_t size) {
    live_[p] = size;
    in_use_ += size;
    peak_ = std::max(peak_, in_use_);
    return p;
  }

  // Frees every cached block (waits for the device first: queued work may still use them).
  size_t release_locked() {
    if (cached_ == 0) return 0;
    DSC_CUDA_CHECK(cudaDeviceSynchronize());
    size_t released = 0;
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        DSC_CUDA_CHECK(cudaFree(p));
        released += size;
      }
      blocks.clear();
    }
    free_.clear();
    cached_ = 0;
    return released;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::unordered_map<void*, size_t> live_;               // handed-out block -> size class
  size_t in_use_ = 0, cached_ = 0, peak_ = 0;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;  // never destroyed: see runtime.cu
  return *a;
}

}  // namespace

void* device_alloc(size_t bytes) {
  compute_stream();  // selects the device and creates the stream before the first allocation
  return allocator().alloc(bytes);
}

void device_free(void* ptr) { allocator().free(ptr); }

AllocatorStats allocator_stats() { return allocator().stats(); }

size_t release_cached_memory() { return allocator().release(); }

}  // namespace dsc::cuda
