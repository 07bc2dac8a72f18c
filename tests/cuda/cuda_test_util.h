// Helpers for the CUDA-vs-CPU tests: the skip decorator for machines without a usable GPU, random
// tensors that are never all zeros, NaN-poisoned outputs, and the tolerance check
//   |cuda - cpu| <= rtol * (|cpu| + max |cpu|)   per element,
// i.e. atol + rtol * |ref| with atol = rtol * (the output's magnitude). A NaN anywhere (e.g. an
// element the kernel never wrote over the poison) fails the check. Uses only the public API, so the
// tests compile in builds without CUDA (where every CUDA test is skipped).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/kernel_options.h"
#include "core/tensor.h"

namespace dsc::test {

// True when the CUDA backend cannot run here: decorate every GPU test case with
// `* doctest::skip(no_cuda())` so that doctest reports it as skipped.
inline bool no_cuda() {
  static const bool none = !device_available(Device::CUDA);
  return none;
}

// True in the host-emulator build (-DDSC_CUDA_EMU=ON, tests/cuda/emu): kernels run on the CPU, one
// thread at a time, so timings mean nothing and full-size training takes hours.
constexpr bool emulated() {
#ifdef DSC_CUDA_EMU
  return true;
#else
  return false;
#endif
}

// For the few GPU cases that only mean something on a real GPU (timings, full-size training, the
// train program on real data): skipped without a GPU and under the emulator.
inline bool no_real_gpu() { return emulated() || no_cuda(); }

inline const KernelTable& cpu_table() { return kernels(Device::CPU); }
inline const KernelTable& cuda_table() { return kernels(Device::CUDA); }

// Host tensor of N(0, std^2) draws (never all zeros).
inline Tensor randn(const Shape& shape, std::mt19937_64& rng, DType dtype = DType::F32,
                    double std = 1.0) {
  return Tensor::randn(shape, rng, std, dtype);
}

inline Tensor on_gpu(const Tensor& t) { return t.to(Device::CUDA); }

// Outputs: the CPU reference uninitialised, the CUDA one poisoned with NaN (integer outputs are
// poisoned by the tests themselves, e.g. with -7).
inline Tensor cpu_out(const Shape& shape, DType dtype = DType::F32) {
  return Tensor::empty(shape, dtype, Device::CPU);
}
inline Tensor poisoned(const Shape& shape, DType dtype = DType::F32) {
  return Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), dtype, Device::CUDA);
}

inline double rtol_for(DType t) {
  switch (t) {
    case DType::F16: return 1e-2;
    case DType::F64: return 1e-10;
    default: return 1e-4;
  }
}

// Checks a CUDA result against the CPU reference (same shape); rtol = 0 demands equality.
inline void check_close(const Tensor& got, const Tensor& ref, double rtol,
                        const std::string& what) {
  REQUIRE_MESSAGE(got.numel() == ref.numel(), what, ": ", got.str(), " vs ", ref.str());
  const std::vector<double> g = got.to_vector(), r = ref.to_vector();
  double scale = 0;
  for (double v : r) scale = std::max(scale, std::abs(v));
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double err = std::abs(g[i] - r[i]);
    const double lim = rtol * (std::abs(r[i]) + scale);
    const bool ok =
        rtol == 0 ? (g[i] == r[i] || (std::isnan(g[i]) && std::isnan(r[i]))) : err <= lim;
    if (!ok && bad++ == 0) first = i;
    if (scale > 0 && err / scale > worst) worst = err / scale;
  }
  std::ostringstream os;
  os << what << ": " << bad << " of " << r.size() << " elements off (rtol " << rtol
     << ", max |ref| " << scale << ", worst |err| / max|ref| " << worst << ")";
  if (bad) os << "; first at " << first << ": cuda " << g[first] << " cpu " << r[first];
  CHECK_MESSAGE(bad == 0, os.str());
}

// Kernel options for one scope: the defaults with `change` applied (restored afterwards).
template <class F>
KernelOptions options_with(F&& change) {
  KernelOptions o;
  change(o);
  return o;
}

}  // namespace dsc::test
