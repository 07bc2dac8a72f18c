// Helpers shared by the CPU kernel tests: the error check (per element,
// |out - ref| <= rtol * (|ref| + max |ref|), NaN fails) and conversion of the double inputs.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace dsc::test {

template <class T>
void check_close(const std::vector<T>& out, const std::vector<double>& ref, double rtol,
                 const std::string& what) {
  REQUIRE(out.size() == ref.size());
  double scale = 0;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  double worst = 0;  // max of |out - ref| / (|ref| + scale)
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::abs(double(out[i]) - ref[i]);
    const double lim = rtol * (std::abs(ref[i]) + scale);
    if (!(err <= lim)) {  // also catches NaN (unwritten outputs)
      if (bad++ == 0) first_bad = i;
    }
    if (std::isfinite(err)) worst = std::max(worst, err / (std::abs(ref[i]) + scale));
  }
  INFO(what << ": worst relative error " << worst << ", first bad index " << first_bad
            << (bad ? " value " + std::to_string(double(out[first_bad])) + " ref " +
                          std::to_string(ref[first_bad])
                    : ""));
  CHECK(bad == 0);
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

}  // namespace dsc::test
