// The fused depthwise-separable convolution on the CPU: y = act(Wp * depthwise(x, Wd) + b), one
// image at a time, so the depthwise output [C, P, Q] lives only in a per-thread buffer that stays
// in cache. An unfused DepSep writes that tensor out and reads it back (HW(3C + K) activation
// elements per image instead of HW(C + K)); the fused backward also recomputes it instead of
// keeping it, and applies the ReLU mask and every gradient of the block in the same per-image pass.
//
// Layouts: x [N, C, H, W], wd [C, 1, R, S] (depthwise, no bias), wp [K, C, 1, 1], b [K],
// y [N, K, P, Q]; the depthwise part's stride and padding are in `dw`. Every function OVERWRITES
// its outputs; b / db / dx may be null. T is float (fast paths) or double (gradient checks).
// Tested against the unfused conv2d kernels in tests/kernels/test_conv2d_cpu.cpp and, through the
// depsep_conv2d op, against f64 finite differences in tests/core/test_grad_check.cpp.
#pragma once

#include "core/cpu/conv2d.h"

namespace dsc {

struct DepSepShape {
  ConvShape dw;       // the depthwise part: n, c, h, w, r, s, stride, pad (groups = k = c)
  int k = 1;          // pointwise output channels
  bool relu = false;  // y = max(0, .) after the bias
  int p() const { return dw.p(); }
  int q() const { return dw.q(); }
  int64_t y_numel() const { return int64_t(dw.n) * k * p() * q(); }
  // The ReLU mask as bits (the relu_mask of the depsep_conv2d kernels): per output row (n, k) of
  // P * Q values this many bytes; bit i % 8 of byte i / 8 is set where y > 0 (the unused high bits
  // of a row's last byte are 0).
  int64_t relu_mask_row_bytes() const { return (int64_t(p()) * q() + 7) / 8; }
};

namespace cpu {

// With relu and a non-null relu_mask ([N, K, s.relu_mask_row_bytes()]), also writes the mask.
template <class T>
void depsep_conv2d_forward(const DepSepShape& s, const T* x, const T* wd, const T* wp, const T* b,
                           T* y, uint8_t* relu_mask = nullptr);

// dy is the gradient at y (after the activation). The ReLU mask comes from relu_mask when it is
// not null (as written by the forward), else from y, the forward output (both may be null
// without relu).
template <class T>
void depsep_conv2d_backward(const DepSepShape& s, const T* x, const T* wd, const T* wp, const T* y,
                            const T* dy, T* dx, T* dwd, T* dwp, T* db,
                            const uint8_t* relu_mask = nullptr);

}  // namespace cpu
}  // namespace dsc
