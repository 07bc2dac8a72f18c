// Build facts for run headers (see version.h).
#include "train/version.h"

#include <cblas.h>
#include <spdlog/version.h>

#include <string>

#include "dsc_git_commit.h"  // generated at build time: DSC_GIT_COMMIT

namespace dsc {

std::string git_commit() { return DSC_GIT_COMMIT; }

std::string library_versions() {
  std::string s = "dsc " DSC_VERSION ", spdlog " + std::to_string(SPDLOG_VER_MAJOR) + "." +
                  std::to_string(SPDLOG_VER_MINOR) + "." + std::to_string(SPDLOG_VER_PATCH);
  const char* cfg = openblas_get_config();
  s += std::string(", ") + (cfg ? cfg : "OpenBLAS");
#ifdef __VERSION__
  s += ", compiler " __VERSION__;
#endif
  return s;
}

}  // namespace dsc
