// The CPU kernel table: thin adapters from tensors to the raw kernels in core/cpu/*_cpu.cpp,
// dispatching on dtype. f32 and f64 run natively; f16 tensors (mixed precision on the CPU) are
// widened to f32, computed in f32 and rounded back, so the CPU runs the same AMP path as a GPU.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "core/cpu/batch_norm.h"
#include "core/cpu/conv2d.h"
#include "core/cpu/cross_entropy.h"
#include "core/cpu/depsep_conv2d.h"
#include "core/cpu/elementwise.h"
#include "core/cpu/gemm.h"
#include "core/cpu/max_pool2d.h"
#include "core/cpu/optimizer.h"
#include "core/error.h"
#include "core/half.h"

namespace dsc {
namespace {

// ---- dtype plumbing -----------------------------------------------------------------------------

// A float view of t: t itself for f32/f64, a widened f32 copy for f16.
Tensor widen(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::F16) return t;
  Tensor out = Tensor::empty(t.shape(), DType::F32);
  cpu::f16_to_f32(t.data<uint16_t>(), out.data<float>(), t.numel());
  return out;
}
// An f32 scratch for writing an f16 output (or the output itself).
Tensor scratch_for(const Tensor& out) {
  return out.dtype() == DType::F16 ? Tensor::empty(out.shape(), DType::F32) : out;
}
// Write back an f32 scratch into an f16 output.
void narrow_into(const Tensor& scratch, Tensor& out) {
  if (out.dtype() != DType::F16) return;
  cpu::f32_to_f16(scratch.data<float>(), out.data<uint16_t>(), out.numel());
}

template <class T> T* ptr(Tensor& t) { return t.data<T>(); }
template <class T> const T* ptr(const Tensor& t) { return t.data<T>(); }
template <class T> T* opt(Tensor* t) { return t ? t->data<T>() : nullptr; }
template <class T> const T* opt(const Tensor* t) { return t ? t->data<T>() : nullptr; }

// Calls f.template operator()<T>() with T = double for f64 tensors and float otherwise.
template <class F> void by_dtype(DType t, F&& f) {
  if (t == DType::F64) {
    f.template operator()<double>();
  } else {
    DSC_CHECK(t == DType::F32, "cpu kernel: unsupported dtype ", dtype_name(t));
    f.template operator()<float>();
  }
}

// ---- memory ------------------------------------------------------------------------------------

// A caching allocator: training allocates the same activation sizes every step, and returning
// 64 MB blocks to the OS only to fault them in again costs ~20% of a CPU step. Blocks are kept in
// per-size free lists (sizes rounded up to 64 bytes, or 4 KiB from 1 MiB on) and reused.
struct HostCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  std::unordered_map<void*, size_t> block_size;
};
HostCache& host_cache() {
  static HostCache* cache = new HostCache;  // never destroyed: tensors may outlive main()
  return *cache;
}
size_t round_block(size_t bytes) {
  const size_t align = bytes >= (size_t(1) << 20) ? 4096 : 64;
  return (std::max<size_t>(bytes, 1) + align - 1) / align * align;
}

void* cpu_alloc(size_t bytes) {
  const size_t size = round_block(bytes);
  HostCache& c = host_cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      return p;
    }
  }
  void* p = std::aligned_alloc(64, size);
  DSC_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
  std::lock_guard<std::mutex> lock(c.mutex);
  c.block_size[p] = size;
  return p;
}
void cpu_free(void* p) {
  HostCache& c = host_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.free_blocks[c.block_size.at(p)].push_back(p);
}
void cpu_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  DSC_CHECK(dd == Device::CPU && sd == Device::CPU, "cpu copy_bytes between devices");
  std::memmove(dst, src, bytes);
}
void cpu_sync() {}

// ---- elementwise -------------------------------------------------------------------------------

void cpu_fill(Tensor& t, double v) {
  switch (t.dtype()) {
    case DType::F32: cpu::fill(t.data<float>(), t.numel(), float(v)); break;
    case DType::F64: cpu::fill(t.data<double>(), t.numel(), v); break;
    case DType::F16: {
      const uint16_t h = float_to_half(float(v));
      uint16_t* p = t.data<uint16_t>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = h;
      break;
    }
    default: throw Error(std::string("fill: unsupported dtype ") + dtype_name(t.dtype()));
  }
}

void cpu_broadcast(const Tensor& value, Tensor& t) {
  DSC_CHECK(value.numel() == 1 && value.dtype() == t.dtype(), "broadcast: value ", value.str(),
            " must be one element of ", t.str(), "'s dtype");
  cpu_fill(t, value.item());  // exact: every float dtype round-trips through double
}

void cpu_cast(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  const DType a = src.dtype(), b = dst.dtype();
  if (a == b) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
  } else if (a == DType::F16 && b == DType::F32) {
    cpu::f16_to_f32(src.data<uint16_t>(), dst.data<float>(), n);
  } else if (a == DType::F32 && b == DType::F16) {
    cpu::f32_to_f16(src.data<float>(), dst.data<uint16_t>(), n);
  } else if (a == DType::F32 && b == DType::F64) {
    const float* s = src.data<float>();
    double* d = dst.data<double>();
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  } else if (a == DType::F64 && b == DType::F32) {
    const double* s = src.data<double>();
    float* d = dst.data<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
  } else {
    Tensor mid = Tensor::empty(src.shape(), DType::F32);
    cpu_cast(src, mid);
    cpu_cast(mid, dst);
  }
}

void cpu_axpy(const Tensor& x, double alpha, Tensor& y) {
  DSC_CHECK(x.dtype() == y.dtype() || (x.dtype() == DType::F16 && y.dtype() == DType::F32),
            "axpy: cannot add ", x.str(), " into ", y.str(), " (same dtype, or f16 into f32)");
  if (x.dtype() != y.dtype()) {  // f16 gradients into f32 master gradients
    Tensor xs = widen(x);
    cpu::axpy(xs.data<float>(), float(alpha), ptr<float>(y), y.numel());
    return;
  }
  if (y.dtype() == DType::F16) {
    Tensor ys = widen(y), xs = widen(x);
    cpu::axpy(xs.data<float>(), float(alpha), ys.data<float>(), y.numel());
    narrow_into(ys, y);
    return;
  }
  by_dtype(y.dtype(), [&]<class T>() { cpu::axpy(ptr<T>(x), T(alpha), ptr<T>(y), y.numel()); });
}

void cpu_scale(Tensor& t, double alpha) {
  if (t.dtype() == DType::F16) {
    Tensor s = widen(t);
    cpu::scale(s.data<float>(), float(alpha), t.numel());
    narrow_into(s, t);
    return;
  }
  by_dtype(t.dtype(), [&]<class T>() { cpu::scale(ptr<T>(t), T(alpha), t.numel()); });
}

void cpu_mul(const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor aw = widen(a), bw = widen(b), o = scratch_for(out);
  by_dtype(o.dtype(), [&]<class T>() { cpu::mul(ptr<T>(aw), ptr<T>(bw), ptr<T>(o), o.numel()); });
  narrow_into(o, out);
}

void cpu_sum(const Tensor& x, Tensor& out) {
  Tensor xw = widen(x);
  double s = 0;
  by_dtype(xw.dtype(), [&]<class T>() { s = cpu::sum(ptr<T>(xw), xw.numel()); });
  out.fill_(s);
}

void cpu_check_finite(const Tensor& x, Tensor& found_inf) {
  Tensor xw = widen(x);
  bool ok = true;
  by_dtype(xw.dtype(), [&]<class T>() { ok = cpu::all_finite(ptr<T>(xw), xw.numel()); });
  if (!ok) found_inf.fill_(1.0);
}

// ---- convolution -------------------------------------------------------------------------------

void cpu_conv_fwd(const ConvShape& s, const Tensor& x, const Tensor& w, const Tensor* b,
                  Tensor& y) {
  Tensor xw = widen(x), ww = widen(w), bw = b ? widen(*b) : Tensor(), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::conv2d_forward<T>(s, ptr<T>(xw), ptr<T>(ww), b ? ptr<T>(bw) : nullptr, ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void cpu_conv_bwd_data(const ConvShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  Tensor dyw = widen(dy), ww = widen(w), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::conv2d_backward_data<T>(s, ptr<T>(dyw), ptr<T>(ww), ptr<T>(o));
  });
  narrow_into(o, dx);
}

void cpu_conv_bwd_filter(const ConvShape& s, const Tensor& x, const Tensor& dy, Tensor& dw,
                         Tensor* db) {
  Tensor xw = widen(x), dyw = widen(dy), o = scratch_for(dw);
  Tensor dbo = db ? scratch_for(*db) : Tensor();
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::conv2d_backward_filter<T>(s, ptr<T>(xw), ptr<T>(dyw), ptr<T>(o),
                                   db ? ptr<T>(dbo) : nullptr);
  });
  narrow_into(o, dw);
  if (db) narrow_into(dbo, *db);
}

// ---- fused depthwise-separable convolution -----------------------------------------------------

void cpu_depsep_fwd(const DepSepShape& s, const Tensor& x, const Tensor& wd, const Tensor& wp,
                    const Tensor* b, Tensor& y) {
  Tensor xw = widen(x), wdw = widen(wd), wpw = widen(wp), bw = b ? widen(*b) : Tensor();
  Tensor yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::depsep_conv2d_forward<T>(s, ptr<T>(xw), ptr<T>(wdw), ptr<T>(wpw), b ? ptr<T>(bw) : nullptr,
                                  ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void cpu_depsep_bwd(const DepSepShape& s, const Tensor& x, const Tensor& wd, const Tensor& wp,
                    const Tensor& y, const Tensor& dy, Tensor* dx, Tensor& dwd, Tensor& dwp,
                    Tensor* db) {
  Tensor xw = widen(x), wdw = widen(wd), wpw = widen(wp), yw = widen(y), dyw = widen(dy);
  Tensor dxo = dx ? scratch_for(*dx) : Tensor(), dwdo = scratch_for(dwd), dwpo = scratch_for(dwp);
  Tensor dbo = db ? scratch_for(*db) : Tensor();
  by_dtype(dwdo.dtype(), [&]<class T>() {
    cpu::depsep_conv2d_backward<T>(s, ptr<T>(xw), ptr<T>(wdw), ptr<T>(wpw), ptr<T>(yw), ptr<T>(dyw),
                                   dx ? ptr<T>(dxo) : nullptr, ptr<T>(dwdo), ptr<T>(dwpo),
                                   db ? ptr<T>(dbo) : nullptr);
  });
  if (dx) narrow_into(dxo, *dx);
  narrow_into(dwdo, dwd);
  narrow_into(dwpo, dwp);
  if (db) narrow_into(dbo, *db);
}

// ---- linear ------------------------------------------------------------------------------------

void cpu_linear_fwd(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  Tensor xw = widen(x), ww = widen(w), bw = b ? widen(*b) : Tensor(), yo = scratch_for(y);
  const int n = int(x.dim(0)), in = int(x.dim(1)), out = int(w.dim(0));
  by_dtype(yo.dtype(), [&]<class T>() {
    T* yp = ptr<T>(yo);
    if (b) {
      const T* bp = ptr<T>(bw);
      for (int i = 0; i < n; ++i) std::memcpy(yp + int64_t(i) * out, bp, sizeof(T) * out);
    }
    cpu::gemm(false, true, n, out, in, T(1), ptr<T>(xw), in, ptr<T>(ww), in, T(b ? 1 : 0), yp,
              out);
  });
  narrow_into(yo, y);
}

void cpu_linear_bwd(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
                    Tensor* db) {
  Tensor xw = widen(x), ww = widen(w), dyw = widen(dy);
  Tensor dxo = dx ? scratch_for(*dx) : Tensor(), dwo = scratch_for(dw);
  Tensor dbo = db ? scratch_for(*db) : Tensor();
  const int n = int(x.dim(0)), in = int(x.dim(1)), out = int(w.dim(0));
  by_dtype(dwo.dtype(), [&]<class T>() {
    if (dx) cpu::gemm(false, false, n, in, out, T(1), ptr<T>(dyw), out, ptr<T>(ww), in, T(0),
                      ptr<T>(dxo), in);
    cpu::gemm(true, false, out, in, n, T(1), ptr<T>(dyw), out, ptr<T>(xw), in, T(0), ptr<T>(dwo),
              in);
    if (db) {
      T* d = ptr<T>(dbo);
      const T* g = ptr<T>(dyw);
      for (int o = 0; o < out; ++o) d[o] = 0;
      for (int i = 0; i < n; ++i)
        for (int o = 0; o < out; ++o) d[o] += g[int64_t(i) * out + o];
    }
  });
  if (dx) narrow_into(dxo, *dx);
  narrow_into(dwo, dw);
  if (db) narrow_into(dbo, *db);
}

// ---- activations, pooling ----------------------------------------------------------------------

void cpu_relu_fwd(const Tensor& x, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() { cpu::relu_forward(ptr<T>(xw), ptr<T>(yo), x.numel()); });
  narrow_into(yo, y);
}

void cpu_relu_bwd(const Tensor& y, const Tensor& dy, Tensor& dx) {
  Tensor yw = widen(y), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::relu_backward(ptr<T>(yw), ptr<T>(dyw), ptr<T>(o), o.numel());
  });
  narrow_into(o, dx);
}

void cpu_max_pool2d_fwd(const Tensor& x, int k, int st, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(yo.dtype(), [&]<class T>() {
    cpu::max_pool2d_forward(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), int(x.dim(2)), int(x.dim(3)),
                            k, st, ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void cpu_max_pool2d_bwd(const Tensor& x, const Tensor& y, const Tensor& dy, int k, int st,
                        Tensor& dx) {
  Tensor xw = widen(x), yw = widen(y), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::max_pool2d_backward(ptr<T>(xw), ptr<T>(yw), ptr<T>(dyw), int(x.dim(0)), int(x.dim(1)),
                             int(x.dim(2)), int(x.dim(3)), k, st, ptr<T>(o));
  });
  narrow_into(o, dx);
}

// ---- batch norm (statistics in the parameters' dtype: f32, or f64 for checks) -------------------

int hw_of(const Tensor& x) { return int(x.numel() / (x.dim(0) * x.dim(1))); }

void cpu_bn_fwd_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                      const BatchNormParams& p, Tensor& rm, Tensor& rv, Tensor& y, Tensor& sm,
                      Tensor& si) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_forward_train<T>(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                     ptr<T>(gamma), ptr<T>(beta), T(p.momentum), T(p.eps),
                                     ptr<T>(rm), ptr<T>(rv), ptr<T>(yo), ptr<T>(sm), ptr<T>(si));
  });
  narrow_into(yo, y);
}

void cpu_bn_fwd_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                     const Tensor& rv, const BatchNormParams& p, Tensor& y) {
  Tensor xw = widen(x), yo = scratch_for(y);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_forward_eval<T>(ptr<T>(xw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                    ptr<T>(gamma), ptr<T>(beta), ptr<T>(rm), ptr<T>(rv), T(p.eps),
                                    ptr<T>(yo));
  });
  narrow_into(yo, y);
}

void cpu_bn_bwd(const Tensor& x, const Tensor& dy, const Tensor& gamma, const Tensor& sm,
                const Tensor& si, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  Tensor xw = widen(x), dyw = widen(dy), o = scratch_for(dx);
  by_dtype(gamma.dtype(), [&]<class T>() {
    cpu::batch_norm_backward<T>(ptr<T>(xw), ptr<T>(dyw), int(x.dim(0)), int(x.dim(1)), hw_of(x),
                                ptr<T>(gamma), ptr<T>(sm), ptr<T>(si), ptr<T>(o), ptr<T>(dgamma),
                                ptr<T>(dbeta));
  });
  narrow_into(o, dx);
}

// ---- loss --------------------------------------------------------------------------------------

void check_labels(const Tensor& labels, int m) {
  const int32_t* l = labels.data<int32_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    DSC_CHECK(l[i] >= 0 && l[i] < m, "cross_entropy: label ", l[i], " at row ", i,
              " outside [0, ", m, ")");
}

void cpu_xent_fwd(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  const int n = int(logits.dim(0)), m = int(logits.dim(1));
  check_labels(labels, m);
  Tensor lw = widen(logits), po = scratch_for(probs);
  double l = 0;
  by_dtype(po.dtype(), [&]<class T>() {
    l = cpu::cross_entropy_forward(ptr<T>(lw), labels.data<int32_t>(), n, m, ptr<T>(po));
  });
  narrow_into(po, probs);
  loss.fill_(l);
}

void cpu_xent_bwd(const Tensor& probs, const Tensor& labels, const Tensor& dloss,
                  Tensor& dlogits) {
  const int n = int(probs.dim(0)), m = int(probs.dim(1));
  Tensor pw = widen(probs), o = scratch_for(dlogits);
  const double d = dloss.item();
  by_dtype(o.dtype(), [&]<class T>() {
    cpu::cross_entropy_backward(ptr<T>(pw), labels.data<int32_t>(), n, m, d, ptr<T>(o));
  });
  narrow_into(o, dlogits);
}

void cpu_count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct) {
  Tensor lw = widen(logits);
  int c = 0;
  by_dtype(lw.dtype(), [&]<class T>() {
    c = cpu::count_correct(ptr<T>(lw), labels.data<int32_t>(), int(lw.dim(0)), int(lw.dim(1)));
  });
  correct.data<int32_t>()[0] += c;
}

// ---- optimizers --------------------------------------------------------------------------------

// A one-element f32 tensor's value (the optimizer's device-resident inputs; here host memory).
float scalar_of(const Tensor& t) {
  DSC_CHECK(t.numel() == 1 && t.dtype() == DType::F32, "expected one f32 element, got ", t.str());
  return t.data<float>()[0];
}

void cpu_adam(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamParams& p) {
  if (p.found_inf && scalar_of(*p.found_inf) != 0.0f) return;  // skipped: nothing changes
  const int64_t step = p.step_count ? int64_t(scalar_of(*p.step_count)) + 1 : p.step;
  cpu::adam_step(params.data<float>(), grads.data<float>(), m.data<float>(), v.data<float>(),
                 params.numel(), p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, step,
                 p.scale ? scalar_of(*p.scale) : p.grad_scale);
  if (p.step_count) p.step_count->data<float>()[0] += 1.0f;
}

void cpu_sgd(Tensor& params, const Tensor& grads, Tensor& buf, const SgdParams& p) {
  if (p.found_inf && scalar_of(*p.found_inf) != 0.0f) return;
  cpu::sgd_step(params.data<float>(), grads.data<float>(), buf.data<float>(), params.numel(), p.lr,
                p.momentum, p.nesterov, p.weight_decay,
                p.scale ? scalar_of(*p.scale) : p.grad_scale);
  if (p.step_count) p.step_count->data<float>()[0] += 1.0f;
}

void cpu_update_loss_scale(Tensor& state, const Tensor& found_inf, const LossScaleParams& p) {
  DSC_CHECK(state.numel() == 3 && state.dtype() == DType::F32,
            "update_loss_scale: state must be f32 [3], got ", state.str());
  float* s = state.data<float>();
  cpu::update_loss_scale(s[0], s[1], s[2], scalar_of(found_inf) != 0.0f, p.growth, p.backoff,
                         p.growth_interval);
}

}  // namespace

void register_cpu_kernels(KernelTable& t) {
  t.device = Device::CPU;
  t.available = true;
  t.alloc = cpu_alloc;
  t.free = cpu_free;
  t.copy_bytes = cpu_copy;
  t.synchronize = cpu_sync;
  t.fill = cpu_fill;
  t.broadcast = cpu_broadcast;
  t.cast = cpu_cast;
  t.axpy = cpu_axpy;
  t.scale = cpu_scale;
  t.mul = cpu_mul;
  t.sum = cpu_sum;
  t.check_finite = cpu_check_finite;
  t.conv2d_forward = cpu_conv_fwd;
  t.conv2d_backward_data = cpu_conv_bwd_data;
  t.conv2d_backward_filter = cpu_conv_bwd_filter;
  t.depsep_conv2d_forward = cpu_depsep_fwd;
  t.depsep_conv2d_backward = cpu_depsep_bwd;
  t.linear_forward = cpu_linear_fwd;
  t.linear_backward = cpu_linear_bwd;
  t.relu_forward = cpu_relu_fwd;
  t.relu_backward = cpu_relu_bwd;
  t.max_pool2d_forward = cpu_max_pool2d_fwd;
  t.max_pool2d_backward = cpu_max_pool2d_bwd;
  t.batch_norm_forward_train = cpu_bn_fwd_train;
  t.batch_norm_forward_eval = cpu_bn_fwd_eval;
  t.batch_norm_backward = cpu_bn_bwd;
  t.cross_entropy_forward = cpu_xent_fwd;
  t.cross_entropy_backward = cpu_xent_bwd;
  t.count_correct = cpu_count_correct;
  t.adam_step = cpu_adam;
  t.sgd_step = cpu_sgd;
  t.update_loss_scale = cpu_update_loss_scale;
}

}  // namespace dsc
