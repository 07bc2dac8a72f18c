// Error checks for the CUDA backend: every CUDA runtime, cuDNN and cuBLAS call is wrapped in one
// of these macros, which throw dsc::Error naming the call, the file and the line; every kernel
// launch goes through launch() (common.cuh), which calls check_launch. Set DSC_CUDA_SYNC=1 to
// synchronise after every launch, so that an asynchronous fault (illegal address, ...) is reported
// at the kernel that caused it rather than at a later call.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

namespace dsc::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t s, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* call, const char* file,
                                     int line);
// Checks cudaGetLastError() after a launch of `kernel` (a __global__ function) at file:line, and
// synchronises when DSC_CUDA_SYNC=1; errors name the kernel (demangled) and the line.
void check_launch(const void* kernel, const char* file, int line);

}  // namespace dsc::cuda

#define DSC_CUDA_CHECK(call)                                                                     \
  do {                                                                                           \
    const cudaError_t dsc_e_ = (call);                                                           \
    if (dsc_e_ != cudaSuccess) ::dsc::cuda::throw_cuda_error(dsc_e_, #call, __FILE__, __LINE__); \
  } while (0)

#define DSC_CUDNN_CHECK(call)                                            \
  do {                                                                   \
    const cudnnStatus_t dsc_s_ = (call);                                 \
    if (dsc_s_ != CUDNN_STATUS_SUCCESS)                                  \
      ::dsc::cuda::throw_cudnn_error(dsc_s_, #call, __FILE__, __LINE__); \
  } while (0)

#define DSC_CUBLAS_CHECK(call)                                            \
  do {                                                                    \
    const cublasStatus_t dsc_s_ = (call);                                 \
    if (dsc_s_ != CUBLAS_STATUS_SUCCESS)                                  \
      ::dsc::cuda::throw_cublas_error(dsc_s_, #call, __FILE__, __LINE__); \
  } while (0)
