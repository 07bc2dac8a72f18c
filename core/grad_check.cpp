// The finite-difference gradient checker (see grad_check.h). Tested through every gradient test
// in tests/core/ (check.h) and directly in tests/core/test_grad_check.cpp.
#include "core/grad_check.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace dsc {

GradCheckResult grad_check(const std::function<Tensor()>& fn, std::vector<Tensor> inputs,
                           const GradCheckOptions& opt) {
  DSC_CHECK(opt.h > 0 && opt.atol >= 0 && opt.rtol >= 0 && opt.max_samples >= 1,
            "grad_check: expected h > 0, atol and rtol >= 0, max_samples >= 1; got h ", opt.h,
            ", atol ", opt.atol, ", rtol ", opt.rtol, ", max_samples ", opt.max_samples);
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& t = inputs[i];
    DSC_CHECK(t.defined() && t.dtype() == DType::F64 && t.device() == Device::CPU &&
                  t.requires_grad() && !t.grad_fn() && t.is_contiguous(),
              "grad_check: input ", i, " is ", t.str(),
              "; expected a CPU f64 leaf that requires grad (the checker perturbs its elements)");
    t.set_grad(Tensor());
  }
  // The loss: fn's value itself when it has one element, else sum(y * R) for a fixed random R.
  Tensor r;
  const auto loss_of = [&](const Tensor& y) {
    DSC_CHECK(y.defined() && y.dtype() == DType::F64, "grad_check: the function returned ", y.str(),
              "; expected an f64 tensor");
    if (y.numel() == 1) return y;
    if (!r.defined() || r.shape() != y.shape()) {
      std::mt19937_64 rng(opt.seed ^ 0x9e3779b97f4a7c15ull);
      r = Tensor::uniform(y.shape(), rng, -1.0, 1.0, DType::F64);
    }
    return ops::sum(ops::mul(y, r));
  };

  GradCheckResult result;
  loss_of(fn()).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor g = inputs[i].grad();
    DSC_CHECK(g.defined(), "grad_check: no gradient reached input ", i, " ", inputs[i].str(),
              " (does the function use it?)");
    DSC_CHECK(g.shape() == inputs[i].shape(), "grad_check: gradient ", g.str(), " for input ", i,
              " ", inputs[i].str());
    result.inputs.emplace_back().analytic = g.to_vector();
  }

  const auto eval = [&] {
    NoGradGuard no_grad;
    return loss_of(fn()).item();
  };
  std::mt19937_64 rng(opt.seed);
  std::ostringstream failures;
  failures.precision(10);
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& t = inputs[i];
    GradCheckInput& in = result.inputs[i];
    std::vector<int64_t> idx(static_cast<size_t>(t.numel()));
    std::iota(idx.begin(), idx.end(), 0);
    if (static_cast<int64_t>(idx.size()) > opt.max_samples) {
      std::shuffle(idx.begin(), idx.end(), rng);
      idx.resize(static_cast<size_t>(opt.max_samples));
    }
    double* p = t.data<double>();
    in.worst_ratio = -1;
    for (int64_t j : idx) {
      if (opt.skip && opt.skip(i, j)) continue;
      const double orig = p[j];
      p[j] = orig + opt.h;
      const double lp = eval();
      p[j] = orig - opt.h;
      const double lm = eval();
      p[j] = orig;
      const double n = (lp - lm) / (2 * opt.h);
      const double a = in.analytic[static_cast<size_t>(j)];
      const double scale = std::max(std::abs(a), std::abs(n));
      const double allowed = opt.atol + opt.rtol * scale;
      const double ratio = std::abs(a - n) / allowed;
      if (!(ratio <= 1.0)) ++in.bad;
      if (!(ratio <= in.worst_ratio)) {  // NaN counts as worst
        in.worst_ratio = std::isnan(ratio) ? HUGE_VAL : ratio;
        in.worst = j;
        in.worst_analytic = a;
        in.worst_numeric = n;
      }
      const double rel = scale > 0 ? std::abs(a - n) / scale : 0.0;
      in.max_rel_error = std::max(in.max_rel_error, std::isnan(rel) ? HUGE_VAL : rel);
      in.max_abs_analytic = std::max(in.max_abs_analytic, std::abs(a));
      ++in.checked;
    }
    if (in.worst_ratio < 0) in.worst_ratio = 0;
    result.max_rel_error = std::max(result.max_rel_error, in.max_rel_error);
    std::ostringstream where;
    where << "input " << i << " " << t.str();
    if (in.checked == 0) {
      failures << where.str() << ": no element checked; ";
    } else if (in.bad > 0) {
      failures << where.str() << ": " << in.bad << " of " << in.checked
               << " elements disagree; worst at " << in.worst << ": analytic " << in.worst_analytic
               << ", numeric " << in.worst_numeric << "; ";
    } else if (!(in.max_abs_analytic > opt.min_abs_gradient)) {
      failures << where.str() << ": gradient is (nearly) zero everywhere (max |analytic| "
               << in.max_abs_analytic << " <= " << opt.min_abs_gradient << "); ";
    }
  }
  std::string f = failures.str();
  result.passed = f.empty();
  std::ostringstream msg;
  msg.precision(3);
  if (result.passed) {
    msg << "gradient check passed: " << inputs.size() << " inputs, max relative error "
        << result.max_rel_error;
  } else {
    f.resize(f.size() - 2);  // the last "; "
    msg << "gradient check failed: " << f;
  }
  result.message = msg.str();
  return result;
}

}  // namespace dsc
