// Finite-difference gradient checker for ops and layers, after Caffe's GradientChecker: the
// analytic gradients of a scalar f64 loss with respect to f64 inputs (one backward pass) against
// central differences (loss(x + h) - loss(x - h)) / 2h, element by element, with a relative
// threshold, random element samples for big tensors and a hook to skip kinks. An element passes
// when |a - n| <= atol + rtol * max(|a|, |n|). Each input's gradient must also be non-trivial
// (some |a| > min_abs_gradient), so a check cannot pass because nothing flowed.
//
//   dsc::Tensor x = dsc::Tensor::uniform({2, 3, 5, 5}, rng, -1, 1, dsc::DType::F64);
//   x.set_requires_grad(true);
//   dsc::GradCheckResult r = dsc::grad_check([&] { return my_op(x); }, {x});
//   if (!r.passed) std::cerr << r.message << "\n";
//
// The function may return the loss (one element) or any output y, which is then reduced to the
// loss sum(y * R) with a fixed random R (drawn from options.seed), so that every output element
// carries a different upstream gradient. Inputs must be CPU f64 leaves that require grad and
// that the function reads; they are perturbed in place and restored. Used by every gradient test
// of the library (tests/core/check.h wraps it for doctest) and by tests/core/test_grad_check.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsc {

struct GradCheckOptions {
  double h = 1e-6;                  // central-difference step
  double atol = 1e-6, rtol = 1e-5;  // |a - n| <= atol + rtol * max(|a|, |n|)
  int max_samples = 80;             // elements checked per input (all when fewer)
  uint64_t seed = 7;                // which elements are sampled, and R
  double min_abs_gradient = 1e-3;   // some |a| of each input must exceed this (0: no check)
  // Optional: elements to leave out (kinks), by input index and flat element index.
  std::function<bool(size_t input, int64_t index)> skip;
};

// What the check found for one input.
struct GradCheckInput {
  int64_t checked = 0;     // elements compared
  int64_t bad = 0;         // elements outside the tolerance
  int64_t worst = -1;      // flat index of the element with the largest error / allowed error
  double worst_ratio = 0;  // that ratio (<= 1 passes; inf for NaN)
  double worst_analytic = 0, worst_numeric = 0;
  double max_rel_error = 0;      // max |a - n| / max(|a|, |n|) over the checked elements
  double max_abs_analytic = 0;   // max |a| over the checked elements
  std::vector<double> analytic;  // the analytic gradient, every element
};

struct GradCheckResult {
  bool passed = false;
  // "gradient check passed: ..." or one clause per failing input: which input, how many elements
  // disagree, the worst element with both values; or that a gradient is zero / nothing checked.
  std::string message;
  double max_rel_error = 0;  // over all inputs
  std::vector<GradCheckInput> inputs;
};

// Runs the check (see the header comment). Throws dsc::Error when it cannot run: inputs that are
// not CPU f64 leaves requiring grad, a function whose result is not f64, or an input no gradient
// reached.
GradCheckResult grad_check(const std::function<Tensor()>& fn, std::vector<Tensor> inputs,
                           const GradCheckOptions& options = {});

}  // namespace dsc
