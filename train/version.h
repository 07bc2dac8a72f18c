// Build facts for run headers: project version, git commit, compiler and library versions.
#pragma once

#include <string>

namespace dsc {

std::string git_commit();        // short hash of the source tree at configure time, or "unknown"
std::string library_versions();  // "spdlog 1.10.0, OpenBLAS 0.3.21, CUDA 13.0, cuDNN 9.x" etc.

}  // namespace dsc
