// Max pooling on NCHW buffers: x [N, C, H, W] -> y [N, C, P, Q], window k x k, stride st, no
// padding, P = (H - k) / st + 1 (core/cpu/max_pool2d.h). Forward: one thread per output, the
// maximum scanned in row-major window order from the window's first element (NaN-handling and ties
// as on the CPU). Backward is a gather, one thread per input element: for every window containing
// the element (in row-major window order, as the CPU visits them), it finds that window's FIRST
// element equal to the window's output and, if that is this element, adds the window's dy. No
// atomics, so overlapping windows (st < k) are deterministic and elements covered by no window get
// 0. When the windows tile the plane exactly (st == k, H = P k, W = Q k, e.g. the seed's 4x4 on
// 32x32), one thread per window finds its first maximum once and writes the window's k x k block of
// dx instead (k*k fewer scans and no index divisions per input element). Tested against the CPU
// backend in tests/cuda/test_cuda_kernels.cpp.
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

template <class T>
__global__ void max_pool2d_forward_kernel(const T* x, int64_t total, int h, int w, int p, int q,
                                          int k, int st, T* y) {
  DSC_GRID_STRIDE(i, total) {
    const int j = static_cast<int>(i % q);
    const int ii = static_cast<int>((i / q) % p);
    const int64_t plane = i / (int64_t(p) * q);
    const T* xp = x + plane * h * w + int64_t(ii * st) * w + j * st;
    T best = xp[0];
    acc_t<T> best_f = to_acc(best);
    for (int a = 0; a < k; ++a)
      for (int b = 0; b < k; ++b) {
        const T v = xp[a * w + b];
        const auto vf = to_acc(v);
        if (vf > best_f) {
          best = v;
          best_f = vf;
        }
      }
    y[i] = best;
  }
}

template <class T>
__global__ void max_pool2d_backward_kernel(const T* x, const T* y, const T* dy, int64_t total,
                                           int h, int w, int p, int q, int k, int st, T* dx) {
  using A = acc_t<T>;
  DSC_GRID_STRIDE(i, total) {
    const int col = static_cast<int>(i % w);
    const int row = static_cast<int>((i / w) % h);
    const int64_t plane = i / (int64_t(h) * w);
    const T* xp = x + plane * h * w;
    const T* yp = y + plane * p * q;
    const T* dyp = dy + plane * p * q;
    // Windows (a, b) with a*st <= row < a*st + k, same for columns.
    const int a_lo = row < k ? 0 : (row - k) / st + 1, a_hi = min(row / st, p - 1);
    const int b_lo = col < k ? 0 : (col - k) / st + 1, b_hi = min(col / st, q - 1);
    A acc = 0;
    for (int a = a_lo; a <= a_hi; ++a)
      for (int b = b_lo; b <= b_hi; ++b) {
        const A target = to_acc(yp[a * q + b]);
        int first = -1;  // flat index in the plane of the window's first maximum
        for (int u = 0; u < k && first < 0; ++u)
          for (int v = 0; v < k; ++v) {
            const int idx = (a * st + u) * w + b * st + v;
            if (to_acc(xp[idx]) == target) {
              first = idx;
              break;
            }
          }
        if (first == row * w + col) acc += to_acc(dyp[a * q + b]);
      }
    dx[i] = cast_to<T>(acc);
  }
}

template <class T>
__global__ void max_pool2d_backward_tiled_kernel(const T* x, const T* y, const T* dy, int64_t total,
                                                 int w, int p, int q, int k, T* dx) {
  DSC_GRID_STRIDE(i, total) {
    const int j = static_cast<int>(i % q);
    const int ii = static_cast<int>((i / q) % p);
    const int64_t plane = i / (int64_t(p) * q);
    const int64_t base = plane * p * k * w + int64_t(ii) * k * w + int64_t(j) * k;
    const acc_t<T> target = to_acc(y[i]);
    int first = -1;  // the window's first maximum, u * k + v
    for (int u = 0; u < k && first < 0; ++u)
      for (int v = 0; v < k; ++v)
        if (to_acc(x[base + int64_t(u) * w + v]) == target) {
          first = u * k + v;
          break;
        }
    const T g = dy[i], zero = cast_to<T>(acc_t<T>(0));
    for (int u = 0; u < k; ++u)
      for (int v = 0; v < k; ++v) dx[base + int64_t(u) * w + v] = u * k + v == first ? g : zero;
  }
}

void check_pool(const char* op, const Tensor& x, int k, int st, const Tensor& y) {
  DSC_CHECK(x.ndim() == 4 && y.ndim() == 4 && k >= 1 && st >= 1 && x.dim(2) >= k && x.dim(3) >= k &&
                y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1) &&
                y.dim(2) == (x.dim(2) - k) / st + 1 && y.dim(3) == (x.dim(3) - k) / st + 1,
            op, ": window ", k, " stride ", st, " does not map ", x.str(), " to ", y.str());
}

}  // namespace

void max_pool2d_forward(const Tensor& x, int k, int st, Tensor& y) {
  check_pool("max_pool2d", x, k, st, y);
  const int64_t total = y.numel();
  if (total == 0) return;
  dispatch_float(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(max_pool2d_forward_kernel<T>, grid_for(total), kThreads)(
        dptr<T>(x), total, int(x.dim(2)), int(x.dim(3)), int(y.dim(2)), int(y.dim(3)), k, st,
        dptr<T>(y));
  });
}

void max_pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& dy, int k, int st,
                         Tensor& dx) {
  check_pool("max_pool2d backward", x, k, st, y);
  same_numel("max_pool2d backward", y, dy);
  same_numel("max_pool2d backward", x, dx);
  const int64_t total = dx.numel();
  if (total == 0) return;
  const bool tiled = st == k && x.dim(2) == y.dim(2) * k && x.dim(3) == y.dim(3) * k;
  dispatch_float(x.dtype(), "max_pool2d backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (tiled) {
      launch(max_pool2d_backward_tiled_kernel<T>, grid_for(y.numel()), kThreads)(
          dptr<T>(x), dptr<T>(y), dptr<T>(dy), y.numel(), int(x.dim(3)), int(y.dim(2)),
          int(y.dim(3)), k, dptr<T>(dx));
      return;
    }
    launch(max_pool2d_backward_kernel<T>, grid_for(total), kThreads)(
        dptr<T>(x), dptr<T>(y), dptr<T>(dy), total, int(x.dim(2)), int(x.dim(3)), int(y.dim(2)),
        int(y.dim(3)), k, st, dptr<T>(dx));
  });
}

}  // namespace dsc::cuda
