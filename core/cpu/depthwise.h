// Depthwise convolution kernels (groups == C == K), called by the conv2d_* entry points.
//
// Layouts as in conv2d.h: x [N, C, H, W], w [C, 1, R, S], y [N, C, P, Q]. Every function
// OVERWRITES its outputs (except image_backward_filter, which accumulates); bias / dbias may be
// null. Tested (through conv2d_* and the fused depsep kernels) against naive loops
// in tests/kernels/test_conv2d_cpu.cpp.
#pragma once

#include <vector>

#include "core/cpu/conv2d.h"

namespace dsc::cpu::depthwise {

template <class T>
void forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void backward_data(const ConvShape& s, const T* dy, const T* w, T* dx);
template <class T>
void backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias);

// One image (s.n is ignored: x [C, H, W], y [C, P, Q]) on the calling thread, for fused callers:
// image_forward writes with ordinary (cached) stores, for a result consumed while still in cache;
// image_backward_data streams its output past the caches when asked.
// image_forward has no bias; image_backward_filter ADDS to acc [C][R*S + 1] (the R*S filter taps,
// then the bias gradient) in f64. `ld` is the distance between the planes of y (forward) and of
// dy (backward) in elements; 0 means P * Q (packed planes).
template <class T>
void image_forward(const ConvShape& s, const T* x, const T* w, T* y, int64_t ld = 0);
// The filters flipped for the stride-1 backward-data stencil (w[c][R-1-r][S-1-t]); empty when that
// path does not apply. Computed once per weight, passed to every image_backward_data call.
template <class T>
std::vector<T> flipped_filters(const ConvShape& s, const T* w);
template <class T>
void image_backward_data(const ConvShape& s, const T* dy, const T* w, const T* flipped, T* dx,
                         bool stream, int64_t ld = 0);
template <class T>
void image_backward_filter(const ConvShape& s, const T* x, const T* dy, double* acc,
                           int64_t ld = 0);

}  // namespace dsc::cpu::depthwise
