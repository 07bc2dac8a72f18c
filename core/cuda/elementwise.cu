// Elementwise CUDA kernels over contiguous buffers (any shape, flat index i): fill, cast, axpy,
// scale, mul, sum, check_finite, relu forward/backward, and the per-channel bias add / bias
// gradient used by conv2d and linear ([outer, K, inner] layouts: NCHW with inner = H*W, or [N, O]
// with inner = 1). f16 is __half storage computed in f32 and rounded once, exactly like the CPU
// backend's widen / compute / narrow; f64 computes in double. Reductions (sum, bias gradient)
// accumulate in double in a fixed order, so results are deterministic.
// Tested against the CPU backend in tests/cuda/test_cuda_kernels.cpp.
#include <cmath>

#include "core/cuda/common.cuh"
#include "core/cuda/kernels.h"

namespace dsc::cuda {
namespace {

// ---- kernels ------------------------------------------------------------------------------------

template <class T> __global__ void fill_kernel(T* p, int64_t n, double v) {
  const T x = cast_to<T>(v);
  DSC_GRID_STRIDE(i, n) p[i] = x;
}

template <class T> __global__ void broadcast_kernel(const T* value, T* p, int64_t n) {
  const T x = *value;
  DSC_GRID_STRIDE(i, n) p[i] = x;
}

template <class S, class D> __global__ void cast_kernel(const S* src, D* dst, int64_t n) {
  DSC_GRID_STRIDE(i, n) dst[i] = cast_to<D>(to_acc(src[i]));  // f64 -> f16 goes through f32
}

// y += alpha x; X = T, or X = __half with T = float (f16 gradients into f32 master gradients).
template <class X, class T>
__global__ void axpy_kernel(const X* x, acc_t<T> alpha, T* y, int64_t n) {
  DSC_GRID_STRIDE(i, n) y[i] = cast_to<T>(to_acc(y[i]) + alpha * to_acc(x[i]));
}

template <class T> __global__ void scale_kernel(T* x, acc_t<T> alpha, int64_t n) {
  DSC_GRID_STRIDE(i, n) x[i] = cast_to<T>(to_acc(x[i]) * alpha);
}

template <class T> __global__ void mul_kernel(const T* a, const T* b, T* out, int64_t n) {
  DSC_GRID_STRIDE(i, n) out[i] = cast_to<T>(to_acc(a[i]) * to_acc(b[i]));
}

template <class T> __global__ void relu_forward_kernel(const T* x, T* y, int64_t n) {
  DSC_GRID_STRIDE(i, n) y[i] = to_acc(x[i]) > 0 ? x[i] : cast_to<T>(0.0f);
}

template <class T> __global__ void relu_backward_kernel(const T* y, const T* dy, T* dx, int64_t n) {
  DSC_GRID_STRIDE(i, n) dx[i] = to_acc(y[i]) > 0 ? dy[i] : cast_to<T>(0.0f);
}

// Per-block partial sums (double) of x; then one block adds the partials in order.
template <class T> __global__ void sum_partial_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double scratch[32];
  double acc = 0;
  DSC_GRID_STRIDE(i, n) acc += static_cast<double>(to_acc(x[i]));
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <class O> __global__ void sum_final_kernel(const double* partial, int parts, O* out) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[0] = cast_to<O>(acc);
}

template <class T> __global__ void check_finite_kernel(const T* x, int64_t n, float* flag) {
  bool bad = false;
  DSC_GRID_STRIDE(i, n) bad |= !isfinite(to_acc(x[i]));
  if (bad) *flag = 1.0f;  // every writer writes the same value; nobody ever clears it
}

// Planes of at least kThreads elements: block x = plane (its channel read once), blocks y and the
// threads walk the plane, so no element pays for an index division (64-bit division is a long
// instruction sequence on a GPU, slower than the memory traffic of these kernels).
template <class T>
__global__ void add_channel_bias_planes_kernel(T* y, const T* b, int k, int64_t inner) {
  const int64_t plane = blockIdx.x;
  const acc_t<T> bias = to_acc(b[plane % k]);
  T* yp = y + plane * inner;
  for (int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; j < inner;
       j += int64_t(blockDim.x) * gridDim.y)
    yp[j] = cast_to<T>(to_acc(yp[j]) + bias);
}

// Small planes: one thread per element.
template <class T>
__global__ void add_channel_bias_kernel(T* y, const T* b, int64_t n, int k, int64_t inner) {
  DSC_GRID_STRIDE(i, n) {
    const int c = static_cast<int>((i / inner) % k);
    y[i] = cast_to<T>(to_acc(y[i]) + to_acc(b[c]));
  }
}

// db[c] = sum_{o, j} dy[(o * k + c) * inner + j], in two steps: block (c, s) sums the planes
// o = s, s + splits, ... of channel c into partial[s][c] (planes of at least kThreads elements
// walked without index divisions), then column_sum adds the splits.
template <class T>
__global__ void channel_sum_kernel(const T* dy, int64_t outer, int k, int64_t inner,
                                   double* partial) {
  __shared__ double scratch[32];
  const int c = blockIdx.x;
  const int64_t splits = gridDim.y;
  double acc = 0;
  if (inner >= blockDim.x) {
    for (int64_t o = blockIdx.y; o < outer; o += splits) {
      const T* p = dy + (o * k + c) * inner;
      for (int64_t j = threadIdx.x; j < inner; j += blockDim.x)
        acc += static_cast<double>(to_acc(p[j]));
    }
  } else {
    const int64_t per = (outer + splits - 1) / splits;  // planes of this split: [o0, o1)
    const int64_t o0 = blockIdx.y * per, o1 = min(outer, o0 + per);
    for (int64_t i = threadIdx.x; i < (o1 - o0) * inner; i += blockDim.x) {
      const int64_t o = o0 + i / inner, j = i % inner;
      acc += static_cast<double>(to_acc(dy[(o * k + c) * inner + j]));
    }
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[int64_t(blockIdx.y) * k + c] = acc;
}

template <class T> struct ChannelSumOut {
  T* db;
  __device__ void operator()(int64_t c, double sum) const { db[c] = cast_to<T>(sum); }
};

}  // namespace

const void* probe_kernel() { return reinterpret_cast<const void*>(&fill_kernel<float>); }

// ---- table entries ------------------------------------------------------------------------------

void fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  auto fill_as = [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(fill_kernel<T>, grid_for(n), kThreads)(dptr<T>(t), n, value);
  };
  switch (t.dtype()) {
    case DType::I32:
      fill_as(Tag<int32_t>{});
      break;
    case DType::U8:
      fill_as(Tag<uint8_t>{});
      break;
    default:
      dispatch_float(t.dtype(), "fill", fill_as);
  }
}

void cast(const Tensor& src, Tensor& dst) {
  same_numel("cast", src, dst);
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype()) {
    copy_bytes(dst.raw(), Device::CUDA, src.raw(), Device::CUDA, src.nbytes());
    return;
  }
  dispatch_float(src.dtype(), "cast", [&](auto s) {
    using S = typename decltype(s)::type;
    dispatch_float(dst.dtype(), "cast", [&](auto d) {
      using D = typename decltype(d)::type;
      launch(cast_kernel<S, D>, grid_for(n), kThreads)(dptr<S>(src), dptr<D>(dst), n);
    });
  });
}

void broadcast(const Tensor& value, Tensor& t) {
  DSC_CHECK(value.numel() == 1 && value.dtype() == t.dtype(), "broadcast: value ", value.str(),
            " must be one element of ", t.str(), "'s dtype");
  const int64_t n = t.numel();
  if (n == 0) return;
  dispatch_float(t.dtype(), "broadcast", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(broadcast_kernel<T>, grid_for(n), kThreads)(dptr<T>(value), dptr<T>(t), n);
  });
}

void axpy(const Tensor& x, double alpha, Tensor& y) {
  same_numel("axpy", x, y);
  const int64_t n = y.numel();
  if (n == 0) return;
  DSC_CHECK(x.dtype() == y.dtype() || (x.dtype() == DType::F16 && y.dtype() == DType::F32),
            "axpy: cannot add ", x.str(), " into ", y.str(), " (same dtype, or f16 into f32)");
  if (x.dtype() != y.dtype()) {
    launch(axpy_kernel<__half, float>, grid_for(n), kThreads)(
        dptr<__half>(x), static_cast<float>(alpha), dptr<float>(y), n);
    return;
  }
  dispatch_float(y.dtype(), "axpy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(axpy_kernel<T, T>, grid_for(n), kThreads)(dptr<T>(x), static_cast<acc_t<T>>(alpha),
                                                     dptr<T>(y), n);
  });
}

void scale(Tensor& t, double alpha) {
  const int64_t n = t.numel();
  if (n == 0) return;
  dispatch_float(t.dtype(), "scale", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(scale_kernel<T>, grid_for(n), kThreads)(dptr<T>(t), static_cast<acc_t<T>>(alpha), n);
  });
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  same_numel("mul", a, out);
  same_numel("mul", b, out);
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype(), "mul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(mul_kernel<T>, grid_for(n), kThreads)(dptr<T>(a), dptr<T>(b), dptr<T>(out), n);
  });
}

void sum(const Tensor& x, Tensor& out) {
  DSC_CHECK(out.numel() == 1, "sum: output must have one element, got ", out.str());
  const int64_t n = x.numel();
  const unsigned parts = std::min<unsigned>(grid_for(n), 1024);
  DeviceBuffer partial(sizeof(double) * parts);
  if (n > 0) {
    dispatch_float(x.dtype(), "sum", [&](auto tag) {
      using T = typename decltype(tag)::type;
      launch(sum_partial_kernel<T>, parts, kThreads)(dptr<T>(x), n, partial.as<double>());
    });
  }
  dispatch_float(out.dtype(), "sum", [&](auto tag) {
    using O = typename decltype(tag)::type;
    launch(sum_final_kernel<O>, 1, kThreads)(partial.as<double>(), n > 0 ? int(parts) : 0,
                                             dptr<O>(out));
  });
}

void check_finite(const Tensor& x, Tensor& found_inf) {
  DSC_CHECK(found_inf.numel() == 1 && found_inf.dtype() == DType::F32,
            "check_finite: the flag must be one f32 element, got ", found_inf.str());
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype(), "check_finite", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(check_finite_kernel<T>, std::min<unsigned>(grid_for(n), 4096), kThreads)(
        dptr<T>(x), n, dptr<float>(found_inf));
  });
}

void relu_forward(const Tensor& x, Tensor& y) {
  same_numel("relu", x, y);
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(y.dtype(), "relu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(relu_forward_kernel<T>, grid_for(n), kThreads)(dptr<T>(x), dptr<T>(y), n);
  });
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  same_numel("relu backward", y, dx);
  same_numel("relu backward", dy, dx);
  const int64_t n = dx.numel();
  if (n == 0) return;
  dispatch_float(dx.dtype(), "relu backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(relu_backward_kernel<T>, grid_for(n), kThreads)(dptr<T>(y), dptr<T>(dy), dptr<T>(dx), n);
  });
}

void add_channel_bias(Tensor& y, const Tensor& b, int k, int64_t inner) {
  DSC_CHECK(b.numel() == k && inner > 0 && y.numel() % (int64_t(k) * inner) == 0, "bias add: bias ",
            b.str(), " does not fit output ", y.str());
  const int64_t n = y.numel();
  if (n == 0) return;
  const int64_t planes = n / inner;
  dispatch_float(y.dtype(), "bias add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (inner >= kThreads && planes < (int64_t(1) << 31)) {
      const dim3 grid(static_cast<unsigned>(planes),
                      static_cast<unsigned>(std::min<int64_t>((inner + kThreads - 1) / kThreads,
                                                              65535)));
      launch(add_channel_bias_planes_kernel<T>, grid, kThreads)(dptr<T>(y), dptr<T>(b), k, inner);
      return;
    }
    launch(add_channel_bias_kernel<T>, grid_for(n), kThreads)(dptr<T>(y), dptr<T>(b), n, k, inner);
  });
}

void channel_sum(const Tensor& dy, int k, int64_t inner, Tensor& db) {
  DSC_CHECK(db.numel() == k && inner > 0 && dy.numel() % (int64_t(k) * inner) == 0,
            "bias gradient: ", db.str(), " does not fit gradient ", dy.str());
  if (k == 0) return;
  const int64_t outer = dy.numel() / (int64_t(k) * inner);
  if (outer == 0) {
    fill(db, 0.0);
    return;
  }
  // Enough blocks to fill the GPU a few times over.
  const int splits =
      static_cast<int>(std::clamp<int64_t>(4 * sm_count() / k, 1, std::min<int64_t>(outer, 65535)));
  DeviceBuffer partial(sizeof(double) * size_t(splits) * k);
  dispatch_float(db.dtype(), "bias gradient", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch(channel_sum_kernel<T>, dim3(k, splits), kThreads)(dptr<T>(dy), outer, k, inner,
                                                             partial.as<double>());
    column_sum(partial.as<double>(), splits, k, ChannelSumOut<T>{dptr<T>(db)},
               "bias gradient column_sum_kernel");
  });
}

}  // namespace dsc::cuda
