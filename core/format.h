// Number formatting shared by reports: thousands separators ("528,778", "11,123.5").
#pragma once

#include <string>

namespace dsc {

std::string with_commas(double value, int decimals = 0);

}  // namespace dsc
