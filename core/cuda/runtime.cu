// The CUDA device runtime (see runtime.h): error reporting, device 0's compute and copy streams,
// the cuBLAS and cuDNN handles, a grown-and-reused workspace, and host<->device copies through a
// pinned staging buffer. All objects are created on first use and intentionally never destroyed
// (tensors may be freed during static destruction, after the CUDA runtime has shut down).
// Exercised by every test in tests/cuda/ (copies: every tensor moved to and from the GPU).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

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

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion) {
    throw Error(detail::cat(no_kernel_image_reason(device_info()), " (launch of ", kernel, " at ",
                            short_path(file), ":", line, ")"));
  }
  if (e != cudaSuccess) {
    const std::string call = std::string("launch of ") + kernel;
    throw_cuda_error(e, call.c_str(), file, line);
  }
  if (sync_after_launch()) {
    const cudaError_t s = cudaStreamSynchronize(compute_stream());
    if (s != cudaSuccess) {
      const std::string call = std::string("kernel ") + kernel + " (DSC_CUDA_SYNC)";
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

void synchronize() { DSC_CUDA_CHECK(cudaStreamSynchronize(compute_stream())); }

// ---- workspace ----------------------------------------------------------------------------------

void* workspace(size_t bytes) {
  static std::mutex mu;
  static void* ptr = nullptr;
  static size_t size = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (bytes > size) {
    device_free(ptr);  // stream-ordered: pending users of the old block finish first
    ptr = nullptr;
    size = 0;
    ptr = device_alloc(bytes);
    size = bytes;
  }
  return ptr;
}

// ---- copies -------------------------------------------------------------------------------------

namespace {

constexpr size_t kStagingChunk = size_t(32) << 20;  // pinned bounce buffer, at most 32 MiB

struct Staging {
  std::mutex mu;
  void* ptr = nullptr;
  size_t size = 0;
  // A pinned buffer of at least `bytes` (caller holds mu; no copy is pending on the old one).
  void* get(size_t bytes) {
    if (bytes > size) {
      if (ptr) DSC_CUDA_CHECK(cudaFreeHost(ptr));
      ptr = nullptr;
      size = 0;
      DSC_CUDA_CHECK(cudaMallocHost(&ptr, bytes));
      size = bytes;
    }
    return ptr;
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
  cudaStream_t stream = compute_stream();
  if (dd == Device::CUDA && sd == Device::CUDA) {
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  const size_t chunk = std::min(bytes, kStagingChunk);
  char* buf = static_cast<char*>(st.get(chunk));
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    if (dd == Device::CUDA) {  // host -> device
      std::memcpy(buf, static_cast<const char*>(src) + off, n);
      DSC_CUDA_CHECK(
          cudaMemcpyAsync(static_cast<char*>(dst) + off, buf, n, cudaMemcpyHostToDevice, stream));
      DSC_CUDA_CHECK(cudaStreamSynchronize(stream));
    } else {  // device -> host (ordered after every kernel queued so far)
      DSC_CUDA_CHECK(cudaMemcpyAsync(buf, static_cast<const char*>(src) + off, n,
                                     cudaMemcpyDeviceToHost, stream));
      DSC_CUDA_CHECK(cudaStreamSynchronize(stream));
      std::memcpy(static_cast<char*>(dst) + off, buf, n);
    }
  }
}

}  // namespace dsc::cuda
