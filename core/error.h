// Errors: every failure the user can cause is an exception whose message names the op, file or
// flag and says what was expected; apps turn them into one line on stderr and a non-zero exit.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dsc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args> std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace dsc

// Throws dsc::Error with the streamed message when cond is false.
#define DSC_CHECK(cond, ...)                                           \
  do {                                                                 \
    if (!(cond)) throw ::dsc::Error(::dsc::detail::cat(__VA_ARGS__)); \
  } while (0)
