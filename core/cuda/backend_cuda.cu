// The CUDA kernel table: register_cuda_kernels() checks that a usable GPU is present and fills
// every entry with the CUDA implementations (kernels.h says which file holds which). It never
// throws: without a driver, without a GPU, or when this build has no kernel image for the GPU's
// architecture, it leaves the table unavailable with a reason that ends in "use --device cpu".
// Tested by tests/cuda/ (every entry against the CPU table; on a machine without a GPU, the
// availability test checks the reason and every other test is skipped).
#include <cstdio>
#include <exception>
#include <string>

#include "core/backend.h"
#include "core/cuda/check.h"
#include "core/cuda/device_info.h"
#include "core/cuda/kernels.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace dsc {
namespace {

// Empty when the GPU can run this build's kernels; otherwise why not.
std::string probe_device() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return detail::cat("no CUDA device found (cudaGetDeviceCount: ",
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices",
                       "); use --device cpu");
  }
  const cuda::DeviceInfo info = cuda::device_info();
  if (!info.available)
    return detail::cat("CUDA initialisation failed (", info.error, "); use --device cpu");
  // 1. The compute capability against the architectures compiled in (needs no kernel).
  if (!cuda::arch_supported(info)) return cuda::no_kernel_image_reason(info);
  // 2. Load one kernel. This registration may run during static initialisation, before the static
  //    constructors that register this library's kernels with the runtime (e.g. when a doctest
  //    decorator calls device_available in a test file): the kernel is then unknown to the runtime
  //    (cudaErrorInvalidDeviceFunction) and the check is left to the first launch (check_launch
  //    reports a missing kernel image the same way).
  cudaFuncAttributes attr{};
  e = cudaFuncGetAttributes(&attr, cuda::probe_kernel());
  (void)cudaGetLastError();
  if (e == cudaSuccess || e == cudaErrorInvalidDeviceFunction) return {};
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorUnsupportedPtxVersion ||
      e == cudaErrorInvalidPtx)
    return detail::cat(cuda::no_kernel_image_reason(info), " (", cudaGetErrorString(e), ")");
  return detail::cat("CUDA initialisation failed on ", info.name,
                     " (cudaFuncGetAttributes: ", cudaGetErrorString(e), "); use --device cpu");
}

}  // namespace

void register_cuda_kernels(KernelTable& t) {
  t.device = Device::CUDA;
  t.available = false;
  try {
    t.unavailable_reason = probe_device();
    if (!t.unavailable_reason.empty()) return;

    for (const std::string& w : cuda::device_info().warnings)
      std::fprintf(stderr, "dsc: warning: %s\n", w.c_str());

    t.alloc = cuda::device_alloc;
    t.free = cuda::device_free;
    t.copy_bytes = cuda::copy_bytes;
    t.synchronize = cuda::synchronize;
    t.graph_supported = cuda::graph_supported;
    t.graph_begin = cuda::graph_begin;
    t.graph_end = cuda::graph_end;
    t.graph_abort = cuda::graph_abort;
    t.graph_replay = cuda::graph_replay;
    t.graph_release = cuda::graph_release;

    t.fill = cuda::fill;
    t.broadcast = cuda::broadcast;
    t.cast = cuda::cast;
    t.axpy = cuda::axpy;
    t.scale = cuda::scale;
    t.mul = cuda::mul;
    t.sum = cuda::sum;
    t.check_finite = cuda::check_finite;

    t.conv2d_forward = cuda::conv2d_forward;
    t.conv2d_backward_data = cuda::conv2d_backward_data;
    t.conv2d_backward_filter = cuda::conv2d_backward_filter;
    t.conv2d_backward = cuda::conv2d_backward;

    t.depsep_conv2d_forward = cuda::depsep_conv2d_forward;
    t.depsep_conv2d_backward = cuda::depsep_conv2d_backward;

    t.linear_forward = cuda::linear_forward;
    t.linear_backward = cuda::linear_backward;

    t.relu_forward = cuda::relu_forward;
    t.relu_backward = cuda::relu_backward;
    t.max_pool2d_forward = cuda::max_pool2d_forward;
    t.max_pool2d_backward = cuda::max_pool2d_backward;

    t.batch_norm_forward_train = cuda::batch_norm_forward_train;
    t.batch_norm_forward_eval = cuda::batch_norm_forward_eval;
    t.batch_norm_backward = cuda::batch_norm_backward;

    t.cross_entropy_forward = cuda::cross_entropy_forward;
    t.cross_entropy_backward = cuda::cross_entropy_backward;
    t.count_correct = cuda::count_correct;

    t.adam_step = cuda::adam_step;
    t.sgd_step = cuda::sgd_step;
    t.update_loss_scale = cuda::update_loss_scale;

    t.algorithm_report = cuda::algorithm_report;

    t.unavailable_reason.clear();
    t.available = true;
  } catch (const std::exception& e) {
    t.available = false;
    t.unavailable_reason =
        detail::cat("the CUDA backend failed to start (", e.what(), "); use --device cpu");
  }
}

}  // namespace dsc
