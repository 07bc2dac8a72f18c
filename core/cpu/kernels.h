// The CPU backend's kernel-table entries, declared from the list (core/kernel_list.h): each entry
// is the function dsc::cpu::<entry> on tensors, defined in the _cpu.cpp file of its op next to the
// raw-pointer kernels it calls (e.g. cpu::max_pool2d_forward in max_pool2d_cpu.cpp), and
// registered by register_cpu_kernels (core/backend_cpu.cpp). Also the dtype plumbing those entries
// share: f32 and f64 run natively; f16 tensors (mixed precision on the CPU) are widened to f32,
// computed in f32 and rounded back, so the CPU runs the same AMP path as a GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/elementwise.h"
#include "core/error.h"
#include "core/tensor.h"

namespace dsc::cpu {

// The entries (those the CPU backend leaves out, see backend_provides(), are declared, never
// defined).
#define DSC_KERNEL(name, ret, params, need) ret name params;
#include "core/kernel_list.h"

// ---- dtype plumbing -----------------------------------------------------------------------------

// A float view of t: t itself for f32/f64, a widened f32 copy for f16.
inline Tensor widen(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::F16) return t;
  Tensor out = Tensor::empty(t.shape(), DType::F32);
  f16_to_f32(t.data<uint16_t>(), out.data<float>(), t.numel());
  return out;
}
// An f32 scratch for writing an f16 output (or the output itself).
inline Tensor scratch_for(const Tensor& out) {
  return out.dtype() == DType::F16 ? Tensor::empty(out.shape(), DType::F32) : out;
}
// Write back an f32 scratch into an f16 output.
inline void narrow_into(const Tensor& scratch, Tensor& out) {
  if (out.dtype() != DType::F16) return;
  f32_to_f16(scratch.data<float>(), out.data<uint16_t>(), out.numel());
}

template <class T> T* ptr(Tensor& t) { return t.data<T>(); }
template <class T> const T* ptr(const Tensor& t) { return t.data<T>(); }

// Calls f.template operator()<T>() with T = double for f64 tensors and float otherwise.
template <class F> void by_dtype(DType t, F&& f) {
  if (t == DType::F64) {
    f.template operator()<double>();
  } else {
    DSC_CHECK(t == DType::F32, "cpu kernel: unsupported dtype ", dtype_name(t));
    f.template operator()<float>();
  }
}

}  // namespace dsc::cpu
