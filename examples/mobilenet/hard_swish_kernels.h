// hard_swish's kernels on raw pointers (see hard_swish.h): n contiguous elements, outputs
// overwritten. No dsc headers, so that nvcc compiles hard_swish_cuda.cu without them.
#pragma once

#include <cstdint>

namespace mobilenet {

// Element types: float, double, uint16_t (f16 bits; __half on the GPU).
enum class Elem { F32, F64, F16 };

void hard_swish_forward_cpu(Elem t, const void* x, void* y, int64_t n);
void hard_swish_backward_cpu(Elem t, const void* x, const void* dy, void* dx, int64_t n);
// On the GPU, queued on `stream` (a cudaStream_t: dsc::cuda_stream()).
void hard_swish_forward_cuda(Elem t, const void* x, void* y, int64_t n, void* stream);
void hard_swish_backward_cuda(Elem t, const void* x, const void* dy, void* dx, int64_t n,
                              void* stream);

}  // namespace mobilenet
