// Winograd F(4x4, 3x3) convolution for float, stride 1, 3x3 filters, groups == 1, 0 <= pad <= 2.
//
// Layouts as in conv2d.h: x [N, C, H, W], w [K, C, 3, 3], bias [K], y [N, K, P, Q]. The output is
// cut into 4x4 tiles (6x6 input tiles); tiles are processed in blocks, 16 tiles per AVX-512 vector
// (8 per AVX2 vector), and each of the 36 transformed-domain positions is a [K x C] x [C x tiles]
// matrix product.
// Every function OVERWRITES its outputs; bias / dbias may be null. Tested (through conv2d_*)
// against naive loops in tests/kernels/test_conv2d_cpu.cpp.
#pragma once

#include "core/cpu/conv2d.h"

namespace dsc::cpu::winograd {

// True when the shape is one the Winograd path handles (and the build has AVX-512 or AVX2 + FMA;
// the AVX2 build also needs at least 16 input and output channels).
bool applicable(const ConvShape& s);

void forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);
void backward_data(const ConvShape& s, const float* dy, const float* w, float* dx);
void backward_filter(const ConvShape& s, const float* x, const float* dy, float* dw, float* dbias);

}  // namespace dsc::cpu::winograd
