// Convolution kernels on raw pointers (the CPU backend's building blocks).
//
// Layouts: x [N, C, H, W], w [K, C/groups, R, S], bias [K], y [N, K, P, Q], all contiguous, with
// P = (H + 2*pad - R) / stride + 1 and Q = (W + 2*pad - S) / stride + 1 (zero padding, no
// dilation). Two groupings are supported: groups == 1 (a normal convolution; R = S = 1 is the
// pointwise 1x1 case) and groups == C == K (depthwise: w is [C, 1, R, S]).
//
// Every function OVERWRITES its outputs (autograd accumulates above this level). `bias` / `dbias`
// may be null. T is float or double; the float versions are the fast paths (Winograd / GEMM /
// vectorised direct), the double versions exist for f64 gradient checks. Tested against naive
// loops in tests/kernels/test_conv2d_cpu.cpp.
#pragma once

#include <cstdint>

namespace dsc {

struct ConvShape {
  int n = 1, c = 1, h = 1, w = 1;  // input
  int k = 1, r = 3, s = 3;         // filters
  int stride = 1, pad = 0;
  int groups = 1;  // 1 or c (depthwise, then k == c)
  int p() const { return (h + 2 * pad - r) / stride + 1; }
  int q() const { return (w + 2 * pad - s) / stride + 1; }
  bool depthwise() const { return groups != 1; }
  int64_t x_numel() const { return int64_t(n) * c * h * w; }
  int64_t w_numel() const { return int64_t(k) * (c / groups) * r * s; }
  int64_t y_numel() const { return int64_t(n) * k * p() * q(); }
  // Multiply-adds of one forward pass over the whole batch.
  int64_t macs() const { return int64_t(n) * k * p() * q() * (c / groups) * r * s; }
};

namespace cpu {

template <class T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward_data(const ConvShape& s, const T* dy, const T* w, T* dx);
template <class T>
void conv2d_backward_filter(const ConvShape& s, const T* x, const T* dy, T* dw, T* dbias);

}  // namespace cpu
}  // namespace dsc
