// linear, CPU: y = x w^T + b with x [N, I], w [O, I], b [O], y [N, O], as OpenBLAS GEMMs
// (gemm.h); the backward's dx = dy w, dw = dy^T x and db = column sums of dy. Tested against a
// naive reference and f64 finite differences in tests/core/test_ops_forward.cpp and
// test_grad_check.cpp.
#include <cstring>

#include "core/cpu/gemm.h"
#include "core/cpu/kernels.h"

namespace dsc::cpu {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
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

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor& dw,
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

}  // namespace dsc::cpu
