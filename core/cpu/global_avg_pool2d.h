// Global average pooling on raw NCHW buffers: x [N, C, H, W] -> y [N, C], the mean of each (n, c)
// plane of H * W elements. Backward spreads each dy[n, c] evenly over its plane:
// dx[n, c, h, w] = dy[n, c] / (H * W). Sums are accumulated in double for f64 and in float for f32.
// Tested against a naive loop and finite differences in tests/core/test_global_avg_pool2d.cpp.
#pragma once

#include <cstdint>

namespace dsc::cpu {

template <class T>
void global_avg_pool2d_forward(const T* x, int64_t planes, int64_t plane_size, T* y);
template <class T>
void global_avg_pool2d_backward(const T* dy, int64_t planes, int64_t plane_size, T* dx);

}  // namespace dsc::cpu
