// The CUDA device runtime: device 0, its streams and library handles, the caching device
// allocator, a reusable workspace and host<->device copies. Everything is created lazily on first
// use, so merely linking the CUDA backend costs nothing on a machine without a GPU.
//
// Stream model (correctness first): every kernel, cuDNN and cuBLAS call of the backend runs on ONE
// compute stream, so memory returned to the allocator's cache can be reused by the next allocation
// in stream order without any event bookkeeping. The copy stream carries host->device transfers
// into the runtime's own staging buffers (see copy_bytes), so they overlap the kernels queued
// before them; the compute stream waits for each transfer with an event.
//
// Kernel choices are KernelOptions (core/kernel_options.h). One debugging switch is an environment
// variable: DSC_CUDA_SYNC=1 synchronises after every kernel launch.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace dsc::cuda {

// ---- device, streams, handles -------------------------------------------------------------------
cudaStream_t compute_stream();
cudaStream_t copy_stream();
cublasHandle_t cublas_handle();  // bound to the compute stream
cudnnHandle_t cudnn_handle();    // bound to the compute stream
int sm_count();                  // multiprocessors of device 0
bool sync_after_launch();        // DSC_CUDA_SYNC=1

// cudaStreamSynchronize(compute stream).
void synchronize();

// ---- caching allocator --------------------------------------------------------------------------
// Blocks are rounded up to a size class (multiples of 512 bytes up to 1 MiB, then quarter steps of
// each power of two) and kept on a free list per class when freed; cudaMalloc is called only when a
// class's list is empty, and on failure the cache is released and the call retried once before an
// out-of-memory error (naming the request and the free memory) is thrown.
void* alloc(size_t bytes);
void free(void* ptr);  // never throws; null is ignored

struct AllocatorStats {
  size_t in_use_bytes = 0;  // handed out, rounded sizes
  size_t cached_bytes = 0;  // on the free lists
  size_t graph_pool_free_bytes = 0;  // free but kept for step graphs (see below)
  size_t peak_in_use_bytes = 0;
  int64_t cuda_mallocs = 0;  // calls to cudaMalloc so far
  int64_t cache_hits = 0;    // allocations served from the free lists
};
AllocatorStats allocator_stats();
// Synchronises the device and cudaFree's every cached block; returns the bytes released.
size_t release_cached_memory();

// Graph pools: between begin_graph_pool() and end_graph_pool() (a stream capture on the compute
// stream, see StepGraph below) every block handed out or freed joins the pool; its blocks are
// handed to no one else until release_graph_pool() (call it after the graph is destroyed and the
// device synchronised). graph_pool_bytes: the pool's blocks, free or held.
int begin_graph_pool();
void end_graph_pool();
void release_graph_pool(int pool) noexcept;
size_t graph_pool_bytes(int pool);

// A scratch buffer from the caching allocator, returned to the cache when destroyed. Safe to free
// right after the kernels using it are queued (reuse is ordered on the compute stream).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes)
      : ptr_(bytes ? cuda::alloc(bytes) : nullptr), bytes_(bytes) {}
  ~DeviceBuffer() { cuda::free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T> T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A device workspace of at least `bytes`, grown (never shrunk) and reused across calls; valid until
// the next call to workspace(). Used for cuDNN's convolution workspaces. A step graph keeps the
// pointer it was captured with, so while any graph is alive (or one is being captured) a grown
// workspace's old block is kept, not freed, until the last graph is released.
void* workspace(size_t bytes);
struct WorkspaceStats {
  size_t bytes = 0;          // the current block
  size_t retired_bytes = 0;  // old blocks kept for live step graphs
  int64_t grows = 0;
};
WorkspaceStats workspace_stats();

// ---- copies -------------------------------------------------------------------------------------
// The table's copy_bytes. host->device returns without waiting for the GPU: the data is copied into
// a pinned staging slot (so the host side may be reused on return), transferred on the copy stream,
// and written to dst in compute-stream order (visible to every kernel queued after the call; a
// host waits only when the GPU is 4 copies behind). device->host is ordered after everything
// queued and synchronises; device->device is queued on the compute stream.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Host->device staging: a slot grows (which waits for the GPU: its old buffers are freed) only when
// a copy is larger than the slot; sizes are rounded up to powers of two, so a run grows each slot
// a few times at most, during its first steps.
struct StagingStats {
  int64_t host_to_device_copies = 0;
  int64_t slot_grows = 0;
  size_t slot_bytes = 0;  // the smallest slot's size: copies up to this never grow a slot
};
StagingStats staging_stats();

// ---- step graphs --------------------------------------------------------------------------------
// The table's graph entries (core/graph.h): capture the work a callable queues on the compute
// stream into a CUDA graph (cudaStreamBeginCapture, thread-local mode; allocations from a graph
// pool), and replay it with one cudaGraphLaunch. Host<->device copies and synchronisation inside a
// capture are errors; DSC_CUDA_SYNC=1 disables capture.
bool graph_supported(std::string* why_not);
void graph_begin();
void* graph_end();              // the executable graph; throws if the capture was invalidated
void graph_abort() noexcept;    // ends a failed capture and discards it
void graph_replay(void* graph);
void graph_release(void* graph) noexcept;
bool capturing();               // a capture is in progress on the compute stream

}  // namespace dsc::cuda
