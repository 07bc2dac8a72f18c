// Number formatting for reports (see format.h).
#include "core/format.h"

#include <cstdio>

namespace dsc {

std::string with_commas(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  const std::string s = buf;
  const size_t sign = (s[0] == '-') ? 1 : 0;
  const size_t dot = s.find('.');
  const size_t int_end = dot == std::string::npos ? s.size() : dot;
  std::string out = s.substr(0, sign);
  for (size_t i = sign; i < int_end; ++i) {
    out += s[i];
    const size_t left = int_end - i - 1;
    if (left > 0 && left % 3 == 0) out += ',';
  }
  return out + s.substr(int_end);
}

}  // namespace dsc
