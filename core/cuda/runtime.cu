// The CUDA device runtime (see runtime.h): error reporting, device 0's compute and copy streams,
// the cuBLAS and cuDNN handles, a grown-and-reused workspace, and host<->device copies through
// pinned staging buffers (host->device asynchronous, over the copy stream). All objects are created
// on first use and intentionally never destroyed (tensors may be freed during static destruction,
// after the CUDA runtime has shut down).
// Exercised by every test in tests/cuda/ (copies: every tensor moved to and from the GPU).
#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/device_info.h"
#include "core/cuda/runtime.h"

namespace dsc::cuda {
namespace {

const char* short_path(const char* file) {
  const char* p = std::strstr(file, "core/cuda/");
  return p ? p : file;
}

bool is_sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout: return true;
    default: return false;
  }
}

void ensure_device() {
  static std::once_flag once;
  std::call_once(once, [] { DSC_CUDA_CHECK(cudaSetDevice(0)); });
}

}  // namespace

// ---- errors -------------------------------------------------------------------------------------

void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  std::string msg = detail::cat("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e),
                                ") in ", call, " at ", short_path(file), ":", line);
  if (is_sticky(e))
    msg +=
        "; the CUDA context is now unusable (restart the process; run with DSC_CUDA_SYNC=1 to "
        "find the kernel that failed)";
  throw Error(msg);
}

void throw_cudnn_error(cudnnStatus_t s, const char* call, const char* file, int line) {
  throw Error(detail::cat("cuDNN error ", cudnnGetErrorString(s), " (", int(s), ") in ", call,
                          " at ", short_path(file), ":", line));
}

void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  throw Error(detail::cat("cuBLAS error ", cublasGetStatusName(s), " (", cublasGetStatusString(s),
                          ") in ", call, " at ", short_path(file), ":", line));
}

bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("DSC_CUDA_SYNC");
    return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

namespace {
// The demangled name of a __global__ function, for error messages.
std::string kernel_name(const void* kernel) {
  const char* mangled = nullptr;
  if (cudaFuncGetName(&mangled, kernel) != cudaSuccess || mangled == nullptr) {
    (void)cudaGetLastError();
    return "a kernel";
  }
  int status = 0;
  char* plain = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && plain ? plain : mangled;
  std::free(plain);
  return name;
}
}  // namespace

void check_launch(const void* kernel, const char* file, int line) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion) {
    throw Error(detail::cat(no_kernel_image_reason(device_info()), " (launch of ",
                            kernel_name(kernel), " at ", short_path(file), ":", line, ")"));
  }
  if (e != cudaSuccess) {
    const std::string call = "launch of " + kernel_name(kernel);
    throw_cuda_error(e, call.c_str(), file, line);
  }
  if (sync_after_launch()) {
    const cudaError_t s = cudaStreamSynchronize(compute_stream());
    if (s != cudaSuccess) {
      const std::string call = "kernel " + kernel_name(kernel) + " (DSC_CUDA_SYNC)";
      throw_cuda_error(s, call.c_str(), file, line);
    }
  }
}

// ---- streams and handles ------------------------------------------------------------------------

cudaStream_t compute_stream() {
  static cudaStream_t stream = [] {
    ensure_device();
    cudaStream_t s = nullptr;
    DSC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return stream;
}

cudaStream_t copy_stream() {
  static cudaStream_t stream = [] {
    ensure_device();
    cudaStream_t s = nullptr;
    DSC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return stream;
}

cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    ensure_device();
    cublasHandle_t h = nullptr;
    DSC_CUBLAS_CHECK(cublasCreate(&h));
    DSC_CUBLAS_CHECK(cublasSetStream(h, compute_stream()));
    // Pure FP32 for f32 GEMMs (no TF32), so results match the CPU backend to ~1e-6; f16 GEMMs
    // use tensor cores through cublasGemmEx regardless of this mode.
    DSC_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    // Our own workspace (32 MiB, what cuBLAS recommends for Hopper), so that no GEMM allocates
    // inside a captured step graph.
    constexpr size_t kCublasWorkspace = size_t(32) << 20;
    void* ws = nullptr;
    DSC_CUDA_CHECK(cudaMalloc(&ws, kCublasWorkspace));
    DSC_CUBLAS_CHECK(cublasSetWorkspace(h, ws, kCublasWorkspace));
    return h;
  }();
  return handle;
}

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t handle = [] {
    ensure_device();
    cudnnHandle_t h = nullptr;
    DSC_CUDNN_CHECK(cudnnCreate(&h));
    DSC_CUDNN_CHECK(cudnnSetStream(h, compute_stream()));
    return h;
  }();
  return handle;
}

int sm_count() {
  static const int count = [] {
    ensure_device();
    int v = 0;
    DSC_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0));
    return std::max(v, 1);
  }();
  return count;
}

void synchronize() {
  DSC_CHECK(!capturing(),
            "cuda: synchronize() inside a captured step graph (a step that waits for the GPU, "
            "e.g. reads a value with item(), cannot be captured)");
  DSC_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
}

// ---- device timers: CUDA events on the compute stream ------------------------------------------

void* timer_mark() {
  DSC_CHECK(!capturing(), "cuda: timer_mark() inside a captured step graph");
  cudaEvent_t e = nullptr;
  DSC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
  DSC_CUDA_CHECK(cudaEventRecord(e, compute_stream()));
  return e;
}

double timer_seconds(void* from, void* to) {
  DSC_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(to)));
  float ms = 0;
  DSC_CUDA_CHECK(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(from), static_cast<cudaEvent_t>(to)));
  return 1e-3 * ms;
}

void timer_release(void* marker) noexcept {
  if (marker) (void)cudaEventDestroy(static_cast<cudaEvent_t>(marker));
}

// ---- workspace ----------------------------------------------------------------------------------

namespace {
struct Workspace {
  std::mutex mu;
  void* ptr = nullptr;
  size_t size = 0;
  std::vector<void*> retired;  // blocks a live step graph may still use
  size_t retired_bytes = 0;
  int64_t grows = 0;
  int live_graphs = 0;  // captured and not yet released

  // Called with the lock held, when no graph is alive any more (the device is synchronised).
  void free_retired() {
    for (void* p : retired) cuda::free(p);
    retired.clear();
    retired_bytes = 0;
  }
};
Workspace& ws_state() {
  static auto* w = new Workspace;  // never destroyed (see the file comment)
  return *w;
}
}  // namespace

void* workspace(size_t bytes) {
  Workspace& w = ws_state();
  std::lock_guard<std::mutex> lock(w.mu);
  if (bytes > w.size) {
    if (w.ptr && (w.live_graphs > 0 || capturing())) {
      w.retired.push_back(w.ptr);  // a graph may replay with it
      w.retired_bytes += w.size;
    } else {
      cuda::free(w.ptr);  // stream-ordered: pending users of the old block finish first
    }
    w.ptr = nullptr;
    w.size = 0;
    w.ptr = cuda::alloc(bytes);
    w.size = bytes;
    ++w.grows;
  }
  return w.ptr;
}

WorkspaceStats workspace_stats() {
  Workspace& w = ws_state();
  std::lock_guard<std::mutex> lock(w.mu);
  return {w.size, w.retired_bytes, w.grows};
}

// ---- step graphs --------------------------------------------------------------------------------

namespace {
struct CapturedGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;
};
std::atomic<bool> g_capturing{false};
int g_capture_pool = 0;
}  // namespace

bool capturing() { return g_capturing.load(); }

bool graph_supported(std::string* why_not) {
  if (sync_after_launch()) {
    if (why_not) *why_not = "DSC_CUDA_SYNC=1 synchronises after every launch";
    return false;
  }
  return true;
}

void graph_begin() {
  DSC_CHECK(!capturing(), "cuda: a step graph is already being captured");
  cublas_handle();  // library handles are created outside the capture
  cudnn_handle();
  g_capture_pool = begin_graph_pool();
  const cudaError_t e =
      cudaStreamBeginCapture(compute_stream(), cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    end_graph_pool();
    release_graph_pool(g_capture_pool);
    DSC_CUDA_CHECK(e);
  }
  g_capturing = true;
}

void* graph_end() {
  DSC_CHECK(capturing(), "cuda: graph_end() without graph_begin()");
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(compute_stream(), &graph);
  g_capturing = false;
  end_graph_pool();
  const int pool = g_capture_pool;
  cudaGraphExec_t exec = nullptr;
  cudaError_t ei = e;
  if (e == cudaSuccess) ei = cudaGraphInstantiate(&exec, graph, 0);
  if (ei != cudaSuccess) {
    (void)cudaGetLastError();
    if (graph) (void)cudaGraphDestroy(graph);
    release_graph_pool(pool);  // nothing of the graph ever ran
    throw_cuda_error(ei, e != cudaSuccess ? "cudaStreamEndCapture" : "cudaGraphInstantiate",
                     __FILE__, __LINE__);
  }
  {
    Workspace& w = ws_state();
    std::lock_guard<std::mutex> lock(w.mu);
    ++w.live_graphs;
  }
  return new CapturedGraph{graph, exec, pool};
}

void graph_abort() noexcept {
  if (!capturing()) return;
  cudaGraph_t graph = nullptr;
  (void)cudaStreamEndCapture(compute_stream(), &graph);
  if (graph) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();
  g_capturing = false;
  end_graph_pool();
  release_graph_pool(g_capture_pool);
}

void graph_replay(void* graph) {
  DSC_CHECK(graph != nullptr, "cuda: replay of a null step graph");
  DSC_CUDA_CHECK(cudaGraphLaunch(static_cast<CapturedGraph*>(graph)->exec, compute_stream()));
}

void graph_release(void* graph) noexcept {
  auto* g = static_cast<CapturedGraph*>(graph);
  if (g == nullptr) return;
  (void)cudaStreamSynchronize(compute_stream());  // the last replay may still run
  (void)cudaGraphExecDestroy(g->exec);
  (void)cudaGraphDestroy(g->graph);
  release_graph_pool(g->pool);
  delete g;
  Workspace& w = ws_state();
  std::lock_guard<std::mutex> lock(w.mu);
  if (--w.live_graphs == 0) w.free_retired();
}

// ---- copies -------------------------------------------------------------------------------------

namespace {

// Host->device copies go through a ring of kSlots (pinned host buffer, device buffer) pairs, so
// that they never wait for the GPU: the host copies the data into pinned slot i (waiting only
// when the transfer that last used that slot is still pending, i.e. the GPU is kSlots copies
// behind), the copy stream moves it into device slot i (once the compute stream has finished
// reading that slot's previous contents), and the compute stream, after waiting for the transfer,
// copies device slot i into the destination. The transfer thus overlaps the kernels queued before
// it (the next batch is copied while the current one computes), and the destination is written
// in compute-stream order like every kernel's output, so blocks recycled by the caching allocator
// stay safe. Device->host copies synchronise (the caller reads the data on return).
constexpr int kSlots = 4;
constexpr size_t kSlotMax = size_t(16) << 20;  // larger copies go through the ring in chunks

struct Slot {
  void* host = nullptr;    // pinned
  void* device = nullptr;  // plain cudaMalloc, outside the caching allocator
  size_t size = 0;
  cudaEvent_t arrived = nullptr;   // on the copy stream: host -> device slot done
  cudaEvent_t consumed = nullptr;  // on the compute stream: device slot -> destination done
};

struct Staging {
  std::mutex mu;
  Slot slots[kSlots];
  int next = 0;
  StagingStats stats;
  void* d2h = nullptr;  // pinned bounce buffer for device -> host
  size_t d2h_size = 0;

  // Slot i, with room for `bytes`, after the transfer that last used it has finished.
  Slot& take(size_t bytes) {
    Slot& s = slots[next];
    next = (next + 1) % kSlots;
    if (!s.arrived) {
      DSC_CUDA_CHECK(cudaEventCreateWithFlags(&s.arrived, cudaEventDisableTiming));
      DSC_CUDA_CHECK(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming));
    }
    DSC_CUDA_CHECK(cudaEventSynchronize(s.arrived));
    if (bytes > s.size) {  // rare: wait for every user of the old buffers, then replace them
      DSC_CUDA_CHECK(cudaEventSynchronize(s.consumed));
      if (s.host) DSC_CUDA_CHECK(cudaFreeHost(s.host));
      if (s.device) DSC_CUDA_CHECK(cudaFree(s.device));
      s.host = s.device = nullptr;
      s.size = 0;
      size_t size = size_t(64) << 10;
      while (size < bytes) size *= 2;
      DSC_CUDA_CHECK(cudaMallocHost(&s.host, size));
      DSC_CUDA_CHECK(cudaMalloc(&s.device, size));
      s.size = size;
      ++stats.slot_grows;
    }
    return s;
  }

  void* d2h_buffer(size_t bytes) {
    if (bytes > d2h_size) {
      if (d2h) DSC_CUDA_CHECK(cudaFreeHost(d2h));
      d2h = nullptr;
      d2h_size = 0;
      DSC_CUDA_CHECK(cudaMallocHost(&d2h, bytes));
      d2h_size = bytes;
    }
    return d2h;
  }
};

Staging& staging() {
  static Staging* s = new Staging;  // never destroyed (see the file comment)
  return *s;
}

}  // namespace

void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  DSC_CHECK(dst != nullptr && src != nullptr, "cuda copy_bytes: null pointer for ", bytes,
            " bytes");
  if (dd == Device::CPU && sd == Device::CPU) {
    std::memmove(dst, src, bytes);
    return;
  }
  cudaStream_t compute = compute_stream();
  DSC_CHECK(!capturing() || (dd == Device::CUDA && sd == Device::CUDA),
            "cuda: a ", sd == Device::CPU ? "host->device" : "device->host", " copy of ", bytes,
            " bytes inside a captured step graph (copy inputs in before the step, read results "
            "after it)");
  if (dd == Device::CUDA && sd == Device::CUDA) {
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, compute));
    return;
  }
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  if (dd == Device::CUDA) {  // host -> device, asynchronous (see Staging)
    ++st.stats.host_to_device_copies;
    cudaStream_t copy = copy_stream();
    for (size_t off = 0; off < bytes; off += kSlotMax) {
      const size_t n = std::min(kSlotMax, bytes - off);
      Slot& s = st.take(n);
      std::memcpy(s.host, static_cast<const char*>(src) + off, n);
      DSC_CUDA_CHECK(cudaStreamWaitEvent(copy, s.consumed, 0));
      DSC_CUDA_CHECK(cudaMemcpyAsync(s.device, s.host, n, cudaMemcpyHostToDevice, copy));
      DSC_CUDA_CHECK(cudaEventRecord(s.arrived, copy));
      DSC_CUDA_CHECK(cudaStreamWaitEvent(compute, s.arrived, 0));
      DSC_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, s.device, n,
                                     cudaMemcpyDeviceToDevice, compute));
      DSC_CUDA_CHECK(cudaEventRecord(s.consumed, compute));
    }
    if (sync_after_launch()) synchronize();
    return;
  }
  // device -> host: ordered after every kernel (and host -> device copy) queued so far
  const size_t chunk = std::min(bytes, kSlotMax);
  char* buf = static_cast<char*>(st.d2h_buffer(chunk));
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    DSC_CUDA_CHECK(cudaMemcpyAsync(buf, static_cast<const char*>(src) + off, n,
                                   cudaMemcpyDeviceToHost, compute));
    DSC_CUDA_CHECK(cudaStreamSynchronize(compute));
    std::memcpy(static_cast<char*>(dst) + off, buf, n);
  }
}

StagingStats staging_stats() {
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  StagingStats r = st.stats;
  r.slot_bytes = st.slots[0].size;
  for (const Slot& s : st.slots) r.slot_bytes = std::min(r.slot_bytes, s.size);
  return r;
}

}  // namespace dsc::cuda
