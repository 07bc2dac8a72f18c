// Max pooling on raw NCHW buffers: x [N, C, H, W] -> y [N, C, P, Q], window k x k, stride st, no
// padding, P = (H - k) / st + 1. Backward sends each dy to the first maximum of its window
// (row-major order), found again by comparing x with y, so nothing extra is saved.
// Tested against a naive loop and finite differences in tests/core/test_ops_forward.cpp and
// test_grad_check.cpp.
#pragma once

namespace dsc::cpu {

template <class T>
void max_pool2d_forward(const T* x, int n, int c, int h, int w, int k, int st, T* y);
template <class T>
void max_pool2d_backward(const T* x, const T* y, const T* dy, int n, int c, int h, int w, int k,
                         int st, T* dx);

}  // namespace dsc::cpu
