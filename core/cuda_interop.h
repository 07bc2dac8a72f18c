// What an out-of-tree CUDA kernel needs from dsc (see core/function.h), without dsc's internal
// CUDA headers: whether this build has the CUDA backend, whether a GPU is usable, the stream every
// dsc kernel runs on, and a launch check. Launch on cuda_stream() so that the kernel is ordered
// with dsc's own work (a tensor's memory is reused in that stream's order):
//
//   my_kernel<<<grid, block, 0, static_cast<cudaStream_t>(dsc::cuda_stream())>>>(
//       x.device_data<float>(), y.device_data<float>(), n);
//   dsc::cuda_check_launch("my_kernel");
//
// Tested in tests/cuda/test_cuda_function.cpp (and by examples/mobilenet on a GPU).
#pragma once

namespace dsc {

// Whether this build of dsc has the CUDA backend (a GPU may still be missing).
bool built_with_cuda();
// Whether CUDA tensors can be used here (the backend is built and a usable GPU was found).
bool cuda_available();
// The CUDA stream dsc's kernels run on, a cudaStream_t. Throws dsc::Error (with the reason)
// when CUDA is not available.
void* cuda_stream();
// After a launch: throws dsc::Error naming `what` if the launch failed (cudaGetLastError), and
// synchronises and checks again when DSC_CUDA_SYNC=1, as dsc does after its own launches.
void cuda_check_launch(const char* what);

}  // namespace dsc
