// Depthwise convolution (groups == C == K) on the GPU, our own kernels (depthwise=own, the
// default; =naive selects the plain versions below, =cudnn cuDNN's grouped convolution, see
// conv2d.cu). Layouts as in core/cpu/conv2d.h: x [N, C, H, W], w [C, 1, R, S], bias [C],
// y [N, C, P, Q], any R x S, stride and zero padding. f16 is computed in f32, f64 in double.
//
// Tiled kernels: one block of 32 x 8 threads per (plane, 16 x 32 tile of the output plane — or of
// dx for backward-data); the input region a tile needs is staged once in shared memory (zeros
// outside the image, which is the padding), the plane's R x S filter too, and each thread computes
// two rows of its column from shared memory.
//   forward:        y[p][q] = b + sum_{r,t} w[r][t] x[p*st - pad + r][q*st - pad + t]
//   backward-data:  dx[h][w] = sum over (r, t) with h + pad - r = p*st, w + pad - t = q*st of
//                   w[r][t] dy[p][q] (a gather; taps visited with r, t descending, i.e. p, q
//                   ascending, the CPU's summation order)
//   backward-filter: grid (C, splits); a block walks the planes n = split, split + splits, ... of
//                   its channel tile by tile (dy tile and the x region in shared memory), warps own
//                   taps (R*S taps + the bias), lanes sum over the tile's positions, and each tap's
//                   running sum is kept in double; column_sum (common.cuh) adds the splits in a
//                   fixed order.
//   both at once:   (stride 1, padding < R and < S; the table's conv2d_backward) one block per
//                   (plane, tile) stages dy once and computes the dx tile and the tile's R*S + 1
//                   filter/bias sums, which column_sum adds up.
// Everything is deterministic (no atomics). Tested against the CPU backend (itself tested against
// naive loops) in tests/cuda/test_cuda_conv2d.cpp, for all three depthwise kernel options.
#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

constexpr int kTileW = 32;  // output columns per block = blockDim.x
constexpr int kTileH = 16;  // output rows per block (blockDim.y = 8, two rows per thread)
constexpr int kBlockY = 8;
constexpr size_t kMaxSmem = 48 * 1024;

__device__ __forceinline__ int floor_div(int a, int b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

struct Dims {
  int n, c, h, w, p, q, r, s, stride, pad;
};

Dims dims_of(const ConvShape& s) {
  return Dims{s.n, s.c, s.h, s.w, s.p(), s.q(), s.r, s.s, s.stride, s.pad};
}

// Input region of an output tile: ((kTileH - 1) * st + R) x ((kTileW - 1) * st + S).
int fwd_in_h(const Dims& d) { return (kTileH - 1) * d.stride + d.r; }
int fwd_in_w(const Dims& d) { return (kTileW - 1) * d.stride + d.s; }
// dy region of a dx tile (see backward_data_tiled_kernel for the bound).
int bwd_dy_h(const Dims& d) { return (kTileH + d.r - 2) / d.stride + 2; }
int bwd_dy_w(const Dims& d) { return (kTileW + d.s - 2) / d.stride + 2; }

// ---- tiled kernels ------------------------------------------------------------------------------

// The filter-gradient sum of one tap over a kTileH x kTileW tile, by one warp (lanes take
// positions): sum of dy_at(i, j) * x_at(i, j, r, t) for tap = r * S + t < taps - 1; tap == taps - 1
// is the bias, the sum of dy_at(i, j). Valid in every lane.
template <class A, class Dy, class X>
__device__ __forceinline__ A tile_tap_sum(int tap, int taps, int s, int lane, Dy dy_at, X x_at) {
  A acc = 0;
  if (tap < taps - 1) {
    const int r = tap / s, t = tap % s;
    for (int pos = lane; pos < kTileH * kTileW; pos += 32)
      acc += dy_at(pos / kTileW, pos % kTileW) * x_at(pos / kTileW, pos % kTileW, r, t);
  } else {
    for (int pos = lane; pos < kTileH * kTileW; pos += 32) acc += dy_at(pos / kTileW, pos % kTileW);
  }
  return warp_sum(acc);
}

template <class T>
__global__ void forward_tiled_kernel(const T* x, const T* w, const T* bias, T* y, Dims d) {
  using A = acc_t<T>;
  DSC_DYNAMIC_SMEM(smem_raw, 16);
  A* wsm = reinterpret_cast<A*>(smem_raw);  // R * S
  A* tile = wsm + d.r * d.s;                // in_h x in_w
  const int in_h = (kTileH - 1) * d.stride + d.r, in_w = (kTileW - 1) * d.stride + d.s;
  const int64_t plane = blockIdx.x;
  const int c = static_cast<int>(plane % d.c);
  const int q0 = blockIdx.y * kTileW, p0 = blockIdx.z * kTileH;
  const int h0 = p0 * d.stride - d.pad, w0 = q0 * d.stride - d.pad;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
  const T* xp = x + plane * d.h * d.w;
  for (int i = tid; i < d.r * d.s; i += nthreads) wsm[i] = to_acc(w[int64_t(c) * d.r * d.s + i]);
  for (int i = tid; i < in_h * in_w; i += nthreads) {
    const int hh = h0 + i / in_w, ww = w0 + i % in_w;
    tile[i] =
        (hh >= 0 && hh < d.h && ww >= 0 && ww < d.w) ? to_acc(xp[int64_t(hh) * d.w + ww]) : A(0);
  }
  __syncthreads();
  const A b = bias ? to_acc(bias[c]) : A(0);
  const int q = q0 + threadIdx.x;
  for (int i = threadIdx.y; i < kTileH; i += blockDim.y) {
    const int p = p0 + i;
    if (p >= d.p || q >= d.q) continue;
    const A* base = tile + i * d.stride * in_w + threadIdx.x * d.stride;
    A acc = b;
    for (int r = 0; r < d.r; ++r)
      for (int t = 0; t < d.s; ++t) acc += wsm[r * d.s + t] * base[r * in_w + t];
    y[(plane * d.p + p) * d.q + q] = cast_to<T>(acc);
  }
}

template <class T>
__global__ void backward_data_tiled_kernel(const T* dy, const T* w, T* dx, Dims d) {
  using A = acc_t<T>;
  DSC_DYNAMIC_SMEM(smem_raw, 16);
  A* wsm = reinterpret_cast<A*>(smem_raw);  // R * S
  A* tile = wsm + d.r * d.s;                // tp x tq region of dy
  const int64_t plane = blockIdx.x;
  const int c = static_cast<int>(plane % d.c);
  const int w0 = blockIdx.y * kTileW, h0 = blockIdx.z * kTileH;  // this block's dx tile
  // Rows p that reach dx rows [h0, h0 + kTileH): h + pad - r = p * st with 0 <= r < R, so
  // p in [floor((h0 + pad - R + 1) / st), floor((h0 + kTileH - 1 + pad) / st)]: at most
  // (kTileH + R - 2) / st + 2 rows. Same for columns. Rows outside [0, P) are staged as zeros.
  const int p_start = floor_div(h0 + d.pad - (d.r - 1), d.stride);
  const int q_start = floor_div(w0 + d.pad - (d.s - 1), d.stride);
  const int tp = (kTileH + d.r - 2) / d.stride + 2, tq = (kTileW + d.s - 2) / d.stride + 2;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
  const T* dyp = dy + plane * d.p * d.q;
  for (int i = tid; i < d.r * d.s; i += nthreads) wsm[i] = to_acc(w[int64_t(c) * d.r * d.s + i]);
  for (int i = tid; i < tp * tq; i += nthreads) {
    const int pp = p_start + i / tq, qq = q_start + i % tq;
    tile[i] =
        (pp >= 0 && pp < d.p && qq >= 0 && qq < d.q) ? to_acc(dyp[int64_t(pp) * d.q + qq]) : A(0);
  }
  __syncthreads();
  const int col = w0 + threadIdx.x;
  for (int i = threadIdx.y; i < kTileH; i += blockDim.y) {
    const int row = h0 + i;
    if (row >= d.h || col >= d.w) continue;
    A acc = 0;
    for (int r = d.r - 1; r >= 0; --r) {
      const int ph = row + d.pad - r;
      if (ph < 0 || ph % d.stride != 0) continue;
      const A* trow = tile + (ph / d.stride - p_start) * tq;
      for (int t = d.s - 1; t >= 0; --t) {
        const int qw = col + d.pad - t;
        if (qw < 0 || qw % d.stride != 0) continue;
        acc += wsm[r * d.s + t] * trow[qw / d.stride - q_start];
      }
    }
    dx[(plane * d.h + row) * d.w + col] = cast_to<T>(acc);
  }
}

// partial[(split * C + c) * (R*S + 1) + tap]: tap < R*S is dw[c][tap], tap == R*S the bias.
template <class T> __global__ void backward_filter_tiled_kernel(const T* x, const T* dy,
                                                                double* partial, Dims d,
                                                                int splits) {
  using A = acc_t<T>;
  DSC_DYNAMIC_SMEM(smem_raw, 16);
  const int taps = d.r * d.s + 1;
  double* tap_acc = reinterpret_cast<double*>(smem_raw);  // taps
  A* dys = reinterpret_cast<A*>(tap_acc + taps);          // kTileH x kTileW
  A* xs = dys + kTileH * kTileW;                          // in_h x in_w
  const int in_h = (kTileH - 1) * d.stride + d.r, in_w = (kTileW - 1) * d.stride + d.s;
  const int c = blockIdx.x, split = blockIdx.y;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
  const int lane = tid & 31, warp = tid >> 5, warps = nthreads >> 5;
  for (int i = tid; i < taps; i += nthreads) tap_acc[i] = 0.0;
  const int tiles_p = (d.p + kTileH - 1) / kTileH, tiles_q = (d.q + kTileW - 1) / kTileW;
  for (int n = split; n < d.n; n += splits) {
    const int64_t plane = int64_t(n) * d.c + c;
    const T* xp = x + plane * d.h * d.w;
    const T* dyp = dy + plane * d.p * d.q;
    for (int ti = 0; ti < tiles_p; ++ti)
      for (int tj = 0; tj < tiles_q; ++tj) {
        const int p0 = ti * kTileH, q0 = tj * kTileW;
        const int h0 = p0 * d.stride - d.pad, w0 = q0 * d.stride - d.pad;
        __syncthreads();  // the previous tile is no longer being read (and tap_acc is zeroed)
        for (int i = tid; i < kTileH * kTileW; i += nthreads) {
          const int pp = p0 + i / kTileW, qq = q0 + i % kTileW;
          dys[i] = (pp < d.p && qq < d.q) ? to_acc(dyp[int64_t(pp) * d.q + qq]) : A(0);
        }
        for (int i = tid; i < in_h * in_w; i += nthreads) {
          const int hh = h0 + i / in_w, ww = w0 + i % in_w;
          xs[i] = (hh >= 0 && hh < d.h && ww >= 0 && ww < d.w) ? to_acc(xp[int64_t(hh) * d.w + ww])
                                                               : A(0);
        }
        __syncthreads();
        for (int tap = warp; tap < taps; tap += warps) {
          const A acc = tile_tap_sum<A>(
              tap, taps, d.s, lane, [&](int i, int j) { return dys[i * kTileW + j]; },
              [&](int i, int j, int r, int t) {
                return xs[(i * d.stride + r) * in_w + j * d.stride + t];
              });
          if (lane == 0) tap_acc[tap] += static_cast<double>(acc);  // this warp owns this tap
        }
      }
  }
  __syncthreads();
  for (int i = tid; i < taps; i += nthreads)
    partial[(int64_t(split) * d.c + c) * taps + i] = tap_acc[i];
}

// Both gradients in one pass (stride 1, 0 <= pad < R and < S; depthwise_backward_both): a block
// owns one plane and a 16 x 32 tile (rows h0.., columns w0..) of both dx and dy. It stages the dy
// region [h0 + pad - R + 1, h0 + pad + 15] x [w0 + pad - S + 1, w0 + pad + 31], which holds every
// dy that dx's tile gathers and the dy tile itself, and the x region [h0 - pad, h0 - pad + 15 + R
// - 1] x [w0 - pad, ...] that the tile's filter gradient correlates with it; computes dx as
// backward_data_tiled_kernel does (same order) and the R*S + 1 sums over the dy tile (taps, bias)
// as backward_filter_tiled_kernel does, written to partial[((tile * N + n) * C + c) * taps + tap]
// for FilterGradOut. dy is read once instead of twice. Tiles cover max(H, P) x
// max(W, Q).
template <class T>
__global__ void backward_both_tiled_kernel(const T* x, const T* dy, const T* w, T* dx,
                                           double* partial, Dims d) {
  using A = acc_t<T>;
  DSC_DYNAMIC_SMEM(smem_raw, 16);
  const int rh = kTileH + d.r - 1, rw = kTileW + d.s - 1;  // both regions' size
  A* wsm = reinterpret_cast<A*>(smem_raw);                 // R * S
  A* dys = wsm + d.r * d.s;                                // rh x rw, from (h0 + pad - R + 1, ...)
  A* xs = dys + rh * rw;                                   // rh x rw, from (h0 - pad, w0 - pad)
  const int64_t plane = blockIdx.x;
  const int c = static_cast<int>(plane % d.c);
  const int w0 = blockIdx.y * kTileW, h0 = blockIdx.z * kTileH;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
  const int lane = tid & 31, warp = tid >> 5, warps = nthreads >> 5;
  const T* dyp = dy + plane * d.p * d.q;
  const T* xp = x + plane * d.h * d.w;
  const int dy_h0 = h0 + d.pad - d.r + 1, dy_w0 = w0 + d.pad - d.s + 1;
  for (int i = tid; i < d.r * d.s; i += nthreads) wsm[i] = to_acc(w[int64_t(c) * d.r * d.s + i]);
  for (int i = tid; i < rh * rw; i += nthreads) {
    const int pp = dy_h0 + i / rw, qq = dy_w0 + i % rw;
    dys[i] =
        (pp >= 0 && pp < d.p && qq >= 0 && qq < d.q) ? to_acc(dyp[int64_t(pp) * d.q + qq]) : A(0);
    const int hh = h0 - d.pad + i / rw, ww = w0 - d.pad + i % rw;
    xs[i] = (hh >= 0 && hh < d.h && ww >= 0 && ww < d.w) ? to_acc(xp[int64_t(hh) * d.w + ww])
                                                         : A(0);
  }
  __syncthreads();
  // dx[h][w] = sum over r, t (descending) of w[r][t] dy[h + pad - r][w + pad - t].
  const int col = w0 + threadIdx.x;
  if (dx != nullptr && col < d.w)
    for (int i = threadIdx.y; i < kTileH; i += blockDim.y) {
      const int row = h0 + i;
      if (row >= d.h) break;
      A acc = 0;
      for (int r = d.r - 1; r >= 0; --r) {
        const A* trow = dys + (i + d.r - 1 - r) * rw + threadIdx.x + d.s - 1;
        for (int t = d.s - 1; t >= 0; --t) acc += wsm[r * d.s + t] * trow[-t];
      }
      dx[(plane * d.h + row) * d.w + col] = cast_to<T>(acc);
    }
  // Filter gradient of the dy tile [h0, h0 + 16) x [w0, w0 + 32) (zeros past P, Q): dy[p][q] at
  // dys[(p - h0 + R - 1 - pad) rw + ...], x[p - pad + r][q - pad + t] at xs[(p - h0 + r) rw + ...].
  const int taps = d.r * d.s + 1;
  const int64_t tile = int64_t(blockIdx.z) * gridDim.y + blockIdx.y;
  const int n = static_cast<int>(plane / d.c);
  const int off = (d.r - 1 - d.pad) * rw + (d.s - 1 - d.pad);
  for (int tap = warp; tap < taps; tap += warps) {
    const A acc = tile_tap_sum<A>(
        tap, taps, d.s, lane, [&](int i, int j) { return dys[off + i * rw + j]; },
        [&](int i, int j, int r, int t) { return xs[(i + r) * rw + j + t]; });
    if (lane == 0)
      partial[((tile * d.n + n) * d.c + c) * taps + tap] = static_cast<double>(acc);
  }
}

// ---- naive kernels (one thread per output element, global memory only) --------------------------

template <class T>
__global__ void forward_naive_kernel(const T* x, const T* w, const T* bias, T* y, Dims d) {
  using A = acc_t<T>;
  const int64_t total = int64_t(d.n) * d.c * d.p * d.q;
  DSC_GRID_STRIDE(i, total) {
    const int q = static_cast<int>(i % d.q), p = static_cast<int>((i / d.q) % d.p);
    const int64_t plane = i / (int64_t(d.p) * d.q);
    const int c = static_cast<int>(plane % d.c);
    const T* xp = x + plane * d.h * d.w;
    const T* f = w + int64_t(c) * d.r * d.s;
    A acc = bias ? to_acc(bias[c]) : A(0);
    for (int r = 0; r < d.r; ++r) {
      const int hh = p * d.stride - d.pad + r;
      if (hh < 0 || hh >= d.h) continue;
      for (int t = 0; t < d.s; ++t) {
        const int ww = q * d.stride - d.pad + t;
        if (ww >= 0 && ww < d.w) acc += to_acc(f[r * d.s + t]) * to_acc(xp[hh * d.w + ww]);
      }
    }
    y[i] = cast_to<T>(acc);
  }
}

template <class T>
__global__ void backward_data_naive_kernel(const T* dy, const T* w, T* dx, Dims d) {
  using A = acc_t<T>;
  const int64_t total = int64_t(d.n) * d.c * d.h * d.w;
  DSC_GRID_STRIDE(i, total) {
    const int col = static_cast<int>(i % d.w), row = static_cast<int>((i / d.w) % d.h);
    const int64_t plane = i / (int64_t(d.h) * d.w);
    const int c = static_cast<int>(plane % d.c);
    const T* dyp = dy + plane * d.p * d.q;
    const T* f = w + int64_t(c) * d.r * d.s;
    A acc = 0;
    for (int r = d.r - 1; r >= 0; --r) {
      const int ph = row + d.pad - r;
      if (ph < 0 || ph % d.stride != 0 || ph / d.stride >= d.p) continue;
      for (int t = d.s - 1; t >= 0; --t) {
        const int qw = col + d.pad - t;
        if (qw < 0 || qw % d.stride != 0 || qw / d.stride >= d.q) continue;
        acc += to_acc(f[r * d.s + t]) * to_acc(dyp[(ph / d.stride) * d.q + qw / d.stride]);
      }
    }
    dx[i] = cast_to<T>(acc);
  }
}

// Grid (C, R*S + 1): one block per (channel, tap) sums over every image and output position.
template <class T>
__global__ void backward_filter_naive_kernel(const T* x, const T* dy, T* dw, T* db, Dims d) {
  __shared__ double scratch[32];
  const int c = blockIdx.x, tap = blockIdx.y, taps = d.r * d.s;
  const int r = tap / d.s, t = tap % d.s;
  const int64_t per_plane = int64_t(d.p) * d.q, total = int64_t(d.n) * per_plane;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
    const int64_t n = i / per_plane;
    const int pq = static_cast<int>(i - n * per_plane);
    const int p = pq / d.q, q = pq % d.q;
    const int64_t plane = n * d.c + c;
    const double g = to_acc(dy[plane * per_plane + pq]);
    if (tap == taps) {
      acc += g;
      continue;
    }
    const int hh = p * d.stride - d.pad + r, ww = q * d.stride - d.pad + t;
    if (hh >= 0 && hh < d.h && ww >= 0 && ww < d.w)
      acc += g * to_acc(x[(plane * d.h + hh) * d.w + ww]);
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x != 0) return;
  if (tap < taps) {
    dw[int64_t(c) * taps + tap] = cast_to<T>(acc);
  } else if (db) {
    db[c] = cast_to<T>(acc);
  }
}

// dw[c][tap] (and db[c]) from the column sums of partial [splits][C][taps] (column_sum).
template <class T> struct FilterGradOut {
  T* dw;
  T* db;
  int taps;
  __device__ void operator()(int64_t i, double sum) const {
    const int64_t c = i / taps;
    const int tap = static_cast<int>(i % taps);
    if (tap < taps - 1) {
      dw[c * (taps - 1) + tap] = cast_to<T>(sum);
    } else if (db) {
      db[c] = cast_to<T>(sum);
    }
  }
};

// ---- host side ----------------------------------------------------------------------------------

void check_depthwise(const char* op, const ConvShape& s, const Tensor& x, const Tensor& w,
                     const Tensor& y) {
  DSC_CHECK(s.depthwise() && s.groups == s.c && s.k == s.c, op, ": not a depthwise shape (groups ",
            s.groups, ", C ", s.c, ", K ", s.k, ")");
  DSC_CHECK(x.numel() == s.x_numel() && w.numel() == s.w_numel() && y.numel() == s.y_numel(), op,
            ": tensors ", x.str(), ", ", w.str(), ", ", y.str(), " do not match the shape");
  DSC_CHECK(s.p() > 0 && s.q() > 0, op, ": empty output");
}

dim3 tile_grid(const Dims& d, int rows, int cols) {
  const int64_t planes = int64_t(d.n) * d.c;
  const int tiles_h = (rows + kTileH - 1) / kTileH, tiles_w = (cols + kTileW - 1) / kTileW;
  DSC_CHECK(planes < (int64_t(1) << 31) && tiles_h <= 65535 && tiles_w <= 65535,
            "depthwise conv: shape too large for the tiled kernel (", planes, " planes, ", tiles_h,
            "x", tiles_w, " tiles); use --depthwise cudnn");
  return dim3(static_cast<unsigned>(planes), tiles_w, tiles_h);
}

}  // namespace

void depthwise_forward(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                       Tensor& y, bool naive) {
  check_depthwise("depthwise conv forward", s, x, w, y);
  const Dims d = dims_of(s);
  dispatch_float(x.dtype(), "depthwise conv forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const size_t smem = sizeof(A) * (size_t(d.r) * d.s + size_t(fwd_in_h(d)) * fwd_in_w(d));
    if (naive || smem > kMaxSmem) {
      launch(forward_naive_kernel<T>, grid_for(y.numel()), kThreads)(dptr<T>(x), dptr<T>(w),
                                                                     dptr_opt<T>(b), dptr<T>(y), d);
      return;
    }
    launch(forward_tiled_kernel<T>, tile_grid(d, d.p, d.q), dim3(kTileW, kBlockY), smem)(
        dptr<T>(x), dptr<T>(w), dptr_opt<T>(b), dptr<T>(y), d);
  });
}

void depthwise_backward_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx,
                             bool naive) {
  check_depthwise("depthwise conv backward-data", s, dx, w, dy);
  const Dims d = dims_of(s);
  dispatch_float(dx.dtype(), "depthwise conv backward-data", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const size_t smem = sizeof(A) * (size_t(d.r) * d.s + size_t(bwd_dy_h(d)) * bwd_dy_w(d));
    if (naive || smem > kMaxSmem) {
      launch(backward_data_naive_kernel<T>, grid_for(dx.numel()), kThreads)(dptr<T>(dy), dptr<T>(w),
                                                                            dptr<T>(dx), d);
      return;
    }
    launch(backward_data_tiled_kernel<T>, tile_grid(d, d.h, d.w), dim3(kTileW, kBlockY), smem)(
        dptr<T>(dy), dptr<T>(w), dptr<T>(dx), d);
  });
}

void depthwise_backward_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                               Tensor* db, bool naive) {
  check_depthwise("depthwise conv backward-filter", s, x, dw, dy);
  if (db)
    DSC_CHECK(db->numel() == s.c, "depthwise conv backward-filter: bias gradient ", db->str(),
              " for ", s.c, " channels");
  const Dims d = dims_of(s);
  const int taps = d.r * d.s + 1;
  dispatch_float(dw.dtype(), "depthwise conv backward-filter", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const size_t smem = sizeof(double) * taps +
                        sizeof(A) * (size_t(kTileH) * kTileW + size_t(fwd_in_h(d)) * fwd_in_w(d));
    if (naive || smem > kMaxSmem) {
      DSC_CHECK(d.r * d.s < 65535, "depthwise conv: filter too large");
      launch(backward_filter_naive_kernel<T>, dim3(d.c, taps), kThreads)(
          dptr<T>(x), dptr<T>(dy), dptr<T>(dw), dptr_opt<T>(db), d);
      return;
    }
    // Enough blocks to fill the GPU a few times over, each still summing whole planes.
    const int target_blocks = 4 * sm_count();
    const int splits = std::max(1, std::min(std::min(d.n, 65535), (target_blocks + d.c - 1) / d.c));
    DeviceBuffer partial(sizeof(double) * size_t(splits) * d.c * taps);
    launch(backward_filter_tiled_kernel<T>, dim3(d.c, splits), dim3(kTileW, kBlockY), smem)(
        dptr<T>(x), dptr<T>(dy), partial.as<double>(), d, splits);
    column_sum(partial.as<double>(), splits, int64_t(d.c) * taps,
               FilterGradOut<T>{dptr<T>(dw), dptr_opt<T>(db), taps},
               "depthwise backward-filter column_sum_kernel");
  });
}

bool depthwise_backward_both(const ConvShape& s, const Tensor& x, const Tensor& dy, const Tensor& w,
                             Tensor* dx, Tensor& dw, Tensor* db) {
  check_depthwise("depthwise conv backward", s, x, dw, dy);
  if (dx) check_depthwise("depthwise conv backward", s, *dx, w, dy);
  if (db)
    DSC_CHECK(db->numel() == s.c, "depthwise conv backward: bias gradient ", db->str(), " for ",
              s.c, " channels");
  const Tensor* all[] = {&x, &w, &dw, dx, db};
  for (const Tensor* t : all)
    if (t)
      DSC_CHECK(t->dtype() == dy.dtype(), "depthwise conv backward: dtypes differ: ", dy.str(),
                " and ", t->str());
  const Dims d = dims_of(s);
  if (d.stride != 1 || d.pad >= d.r || d.pad >= d.s || d.n == 0) return false;
  const int taps = d.r * d.s + 1;
  const int rows = std::max(d.h, d.p), cols = std::max(d.w, d.q);
  const int64_t planes = int64_t(d.n) * d.c;
  const int tiles_h = (rows + kTileH - 1) / kTileH, tiles_w = (cols + kTileW - 1) / kTileW;
  if (planes >= (int64_t(1) << 31) || tiles_h > 65535 || tiles_w > 65535) return false;
  const int64_t splits = int64_t(tiles_h) * tiles_w * d.n;  // partials per (channel, tap)
  bool done = false;
  dispatch_float(dw.dtype(), "depthwise conv backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = acc_t<T>;
    const size_t smem = sizeof(A) * (size_t(d.r) * d.s +
                                     2 * size_t(kTileH + d.r - 1) * size_t(kTileW + d.s - 1));
    if (smem > kMaxSmem || splits > (int64_t(1) << 31) / taps / d.c) return;
    DeviceBuffer partial(sizeof(double) * size_t(splits) * d.c * taps);
    launch(backward_both_tiled_kernel<T>, dim3(static_cast<unsigned>(planes), tiles_w, tiles_h),
           dim3(kTileW, kBlockY),
           smem)(dptr<T>(x), dptr<T>(dy), dptr<T>(w), dptr_opt<T>(dx), partial.as<double>(), d);
    column_sum(partial.as<double>(), splits, int64_t(d.c) * taps,
               FilterGradOut<T>{dptr<T>(dw), dptr_opt<T>(db), taps},
               "depthwise backward column_sum_kernel");
    done = true;
  });
  return done;
}

}  // namespace dsc::cuda
