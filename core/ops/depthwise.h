// Depthwise convolution kernels (groups == C == K), called by the conv2d_* entry points.
//
// Layouts as in conv2d.h: x [N, C, H, W], w [C, 1, R, S], y [N, C, P, Q]. Every function
// OVERWRITES its outputs; bias / dbias may be null. Tested (through conv2d_*) against naive loops
// in tests/kernels/test_conv_cpu.cpp.
#pragma once

#include "core/ops/conv2d.h"

namespace dsc::cpu::depthwise {

template <class T>
void forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void backward_data(const ConvShape& s, const T* dy, const T* w, T* dx);
template <class T>
void backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias);

}  // namespace dsc::cpu::depthwise
