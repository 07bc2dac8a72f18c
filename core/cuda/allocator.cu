// The caching device allocator (see runtime.h). Requests are rounded up to a size class; a freed
// block goes onto its class's free list and the next request of that class takes it back, so a
// training loop that allocates the same activations every step calls cudaMalloc only during its
// first steps. Reuse is safe without events because every user of device memory runs on the one
// compute stream (a block is reused by work queued after the work that used it).
//
// Size classes: multiples of 512 bytes up to 1 MiB; above that, quarter steps of the enclosing
// power of two (1, 1.25, 1.5, 1.75, 2 MiB, ...), so at most 25% of a large block is padding.
//
// Graph pools (runtime.h, StepGraph): while a step graph is being captured, every block handed out
// and every block freed belongs to that graph's pool, because the graph's replays will write to
// them at times the host does not see. A pool's free blocks serve only later allocations of the
// same capture; after the capture they are handed to nobody until the graph is released, when they
// return to the ordinary free lists. A pool block that is still held when the graph is released
// goes to the ordinary lists when it is freed.
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
#ifdef DSC_CUDA_EMU
  return bytes;  // host emulator: exact sizes, so AddressSanitizer sees every overrun
#endif
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
    if (capturing_ != 0) {  // the capture's own free blocks first
      auto& pool_free = pools_[capturing_].free[size];
      if (!pool_free.empty()) {
        void* p = pool_free.back();
        pool_free.pop_back();
        pools_[capturing_].bytes -= size;
        ++stats_.cache_hits;
        return hand_out(p, size);
      }
    }
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= size;
      ++stats_.cache_hits;
      return hand_out(p, size);
    }
    void* p = nullptr;
    cudaError_t e = malloc_outside_capture(&p, size);
    if (e == cudaErrorMemoryAllocation && capturing_ == 0) {
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
    const size_t size = it->second.size;
    int pool = it->second.pool;
    live_.erase(it);
    in_use_ -= size;
    if (capturing_ != 0) pool = capturing_;  // the graph may use it: keep it for the graph
    try {
      if (pool != 0) {
        pools_[pool].free[size].push_back(p);
        pools_[pool].bytes += size;
      } else {
        free_[size].push_back(p);
        cached_ += size;
      }
    } catch (...) {  // out of host memory for the list: give the block back to the driver
      if (capturing_ == 0) (void)cudaFree(p);
    }
  }

  int begin_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    DSC_CHECK(capturing_ == 0, "cuda: a step graph is already being captured");
    capturing_ = ++last_pool_;
    pools_[capturing_];
    return capturing_;
  }

  void end_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    capturing_ = 0;
  }

  // The graph is gone (the caller synchronised): its free blocks rejoin the ordinary lists, and its
  // blocks still held will when they are freed.
  void release_pool(int pool) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(pool);
    if (it == pools_.end()) return;
    try {
      for (auto& [size, blocks] : it->second.free)
        for (void* p : blocks) {
          free_[size].push_back(p);
          cached_ += size;
        }
    } catch (...) {  // out of host memory for the lists: those blocks stay allocated, unused
    }
    for (auto& [p, block] : live_)
      if (block.pool == pool) block.pool = 0;
    pools_.erase(it);
  }

  size_t pool_bytes(int pool) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(pool);
    size_t held = 0;
    for (const auto& [p, block] : live_)
      if (block.pool == pool) held += block.size;
    return (it == pools_.end() ? 0 : it->second.bytes) + held;
  }

  size_t release() {
    std::lock_guard<std::mutex> lock(mu_);
    DSC_CHECK(capturing_ == 0, "cuda: cannot release cached memory while a step graph is captured");
    return release_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s = stats_;
    s.in_use_bytes = in_use_;
    s.cached_bytes = cached_;
    for (const auto& [id, pool] : pools_) s.graph_pool_free_bytes += pool.bytes;
    s.peak_in_use_bytes = peak_;
    return s;
  }

 private:
  // cudaMalloc is not observed by a stream capture; allowing it on this thread during one (as the
  // relaxed capture mode does) is safe here because the block then belongs to the graph's pool.
  cudaError_t malloc_outside_capture(void** p, size_t size) {
    if (capturing_ == 0) return cudaMalloc(p, size);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    DSC_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    const cudaError_t e = cudaMalloc(p, size);
    DSC_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    return e;
  }

  void* hand_out(void* p, size_t size) {
    live_[p] = Block{size, capturing_};
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

  struct Block {
    size_t size = 0;  // size class
    int pool = 0;     // graph pool it belongs to; 0: none
  };
  struct Pool {
    std::unordered_map<size_t, std::vector<void*>> free;
    size_t bytes = 0;  // on its free lists
  };

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::unordered_map<void*, Block> live_;                // handed-out block -> size, pool
  std::unordered_map<int, Pool> pools_;
  int capturing_ = 0, last_pool_ = 0;
  size_t in_use_ = 0, cached_ = 0, peak_ = 0;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;  // never destroyed: see runtime.cu
  return *a;
}

}  // namespace

void* alloc(size_t bytes) {
  compute_stream();  // selects the device and creates the stream before the first allocation
  return allocator().alloc(bytes);
}

void free(void* ptr) { allocator().free(ptr); }

AllocatorStats allocator_stats() { return allocator().stats(); }

size_t release_cached_memory() { return allocator().release(); }

int begin_graph_pool() { return allocator().begin_pool(); }
void end_graph_pool() { allocator().end_pool(); }
void release_graph_pool(int pool) noexcept { allocator().release_pool(pool); }
size_t graph_pool_bytes(int pool) { return allocator().pool_bytes(pool); }

}  // namespace dsc::cuda
