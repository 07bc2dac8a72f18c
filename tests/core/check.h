// Shared helpers of the core tests: random tensors, element-wise comparison with atol + rtol * |ref|,
// and doctest assertions around the library's central finite-difference gradient checker in f64
// (core/grad_check.h, after Caffe's GradientChecker: a relative threshold, random element samples
// for big tensors, and a hook to skip kinks).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/grad_check.h"
#include "core/ops.h"
#include "core/tensor.h"

// Failed CHECKs on vectors print their values.
namespace doctest {
template <> struct StringMaker<std::vector<double>> {
  static String convert(const std::vector<double>& v) {
    std::ostringstream os;
    os.precision(10);
    os << '{';
    for (size_t i = 0; i < v.size() && i < 16; ++i) os << (i ? ", " : "") << v[i];
    if (v.size() > 16) os << ", ... (" << v.size() << " values)";
    os << '}';
    return String(os.str().c_str());
  }
};
}  // namespace doctest

namespace dsc::test {

// ---- random data ------------------------------------------------------------------------------

// Uniform values with |v| in [lo, hi] and a random sign: never zero, never near a relu kink.
inline Tensor away_from_zero(const Shape& shape, std::mt19937_64& rng, double lo, double hi,
                             DType dtype = DType::F64) {
  std::uniform_real_distribution<double> mag(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = neg(rng) ? -mag(rng) : mag(rng);
  return Tensor::from(v, shape, dtype);
}

// Labels in [0, classes), i32.
inline Tensor random_labels(int64_t n, int classes, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(0, classes - 1);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = d(rng);
  return Tensor::from(v, {n}, DType::I32);
}

// An f64 leaf requiring grad with the values of t (exact for f32/f16 sources).
inline Tensor f64_leaf(const Tensor& t) {
  Tensor out = t.to(DType::F64);
  out.set_requires_grad(true);
  return out;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// ---- comparison ------------------------------------------------------------------------------

// One CHECK per call: every element must satisfy |got - want| <= atol + rtol * |want| (NaN fails).
// The message names the worst element (largest error / allowed error).
inline void check_close(const std::vector<double>& got, const std::vector<double>& want,
                        double atol, double rtol, const std::string& what) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": ", got.size(), " values, expected ",
                  want.size());
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]);
    const double allowed = atol + rtol * std::abs(want[i]);
    const bool ok = err <= allowed;  // false for NaN
    if (!ok) ++bad;
    const double ratio = ok ? err / allowed : HUGE_VAL;
    if (worst < 0 || ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = static_cast<int64_t>(i);
    }
  }
  std::ostringstream msg;
  msg << what << ": " << bad << " of " << got.size() << " elements outside atol " << atol
      << " + rtol " << rtol << " * |ref|";
  if (worst >= 0) {
    msg.precision(10);
    msg << "; worst at " << worst << ": got " << got[worst] << ", want " << want[worst];
  }
  CHECK_MESSAGE(bad == 0, msg.str());
}

inline void check_close(const Tensor& got, const std::vector<double>& want, double atol,
                        double rtol, const std::string& what) {
  check_close(got.to_vector(), want, atol, rtol, what);
}

// Bitwise equality of two tensors' bytes (same dtype and numel).
inline bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.numel() != b.numel()) return false;
  const auto* pa = static_cast<const unsigned char*>(a.raw());
  const auto* pb = static_cast<const unsigned char*>(b.raw());
  return std::equal(pa, pa + a.nbytes(), pb);
}

// Asserts that `f` throws dsc::Error whose message contains every one of `parts`.
inline void check_throws_with(const std::function<void()>& f,
                              const std::vector<std::string>& parts, const std::string& what) {
  std::string message;
  bool threw = false;
  try {
    f();
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  CHECK_MESSAGE(threw, what, ": expected dsc::Error");
  for (const std::string& p : parts) {
    CHECK_MESSAGE(message.find(p) != std::string::npos, what, ": message '", message,
                  "' lacks '", p, "'");
  }
}

// ---- finite differences --------------------------------------------------------------------------

// The library's checker (core/grad_check.h), with its options.
using GradCheckOptions = dsc::GradCheckOptions;

// Checks the analytic gradients of the one-element f64 loss computed by `loss_fn` with respect to
// each of `inputs` (f64 leaves that require grad, read by loss_fn) against central differences,
// through dsc::grad_check: one CHECK per input that its elements agree, that some element was
// checked and that its gradient is non-trivial (some |a| > 1e-3), so the check can fail.
// Returns the analytic gradients (all elements), e.g. to compare f32 gradients against.
inline std::vector<std::vector<double>> check_gradients(const std::string& what,
                                                        const std::function<Tensor()>& loss_fn,
                                                        std::vector<Tensor> inputs,
                                                        const GradCheckOptions& opt = {}) {
  for (Tensor& t : inputs) {
    REQUIRE_MESSAGE(t.dtype() == DType::F64, what, ": gradient check inputs must be f64");
    REQUIRE(t.requires_grad());
  }
  // The loss itself, not a reduction of it: the library checks a one-element result as it is.
  bool first = true;
  const std::function<Tensor()> checked_loss = [&] {
    Tensor loss = loss_fn();
    if (first) {
      REQUIRE_MESSAGE(loss.numel() == 1, what, ": loss must be a scalar");
      REQUIRE_MESSAGE(loss.dtype() == DType::F64, what, ": loss must be f64");
      first = false;
    }
    return loss;
  };
  GradCheckResult r;
  try {
    r = grad_check(checked_loss, inputs, opt);
  } catch (const Error& e) {
    FAIL(what, ": ", e.what());
  }
  REQUIRE(r.inputs.size() == inputs.size());
  std::vector<std::vector<double>> analytic;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const GradCheckInput& in = r.inputs[i];
    CHECK_MESSAGE(in.checked > 0, what, ", input ", i, ": no element checked");
    CHECK_MESSAGE(in.bad == 0, what, ", input ", i, " ", inputs[i].str(), ": ", in.bad, " of ",
                  in.checked, " elements disagree; worst at ", in.worst, ": analytic ",
                  in.worst_analytic, ", numeric ", in.worst_numeric);
    CHECK_MESSAGE(in.max_abs_analytic > 1e-3, what, ", input ", i,
                  ": gradient is (nearly) zero everywhere");
    analytic.push_back(in.analytic);
  }
  return analytic;
}

// loss = sum(y * r): the standard way to turn an op's output into a scalar with a random,
// non-uniform upstream gradient r.
inline Tensor weighted_sum(const Tensor& y, const Tensor& r) { return ops::sum(ops::mul(y, r)); }

}  // namespace dsc::test
