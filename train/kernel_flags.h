// Command-line flags for the kernel choices (core/kernel_options.h), shared by train, bench and
// train_steps: --depthwise, --pointwise, --depsep, --conv-search, --conv-workspace-mb,
// --nondeterministic. They select among the CUDA backend's implementations; the CPU backend has one
// of each and ignores them. Tested in tests/apps/test_kernel_flags.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/kernel_options.h"

namespace dsc {

struct KernelFlags {
  std::string depthwise = "own", pointwise = "cublas", depsep = "fused", conv_search = "benchmark";
  int64_t conv_workspace_mb = 512;
  bool nondeterministic = false;
};

// Adds the flags to `app` (values checked at parse time: a bad one is a parse error naming the
// flag and the accepted values).
void add_kernel_flags(CLI::App& app, KernelFlags& flags);
KernelOptions to_kernel_options(const KernelFlags& flags);

}  // namespace dsc
