// Kernel choices (see kernel_options.h): one process-wide set, its generation counter, and the
// names the flags use. Tested in tests/core/test_kernel_options.cpp; their effect on the CUDA
// backend in tests/cuda/.
#include "core/kernel_options.h"

#include <atomic>

#include "core/error.h"

namespace dsc {
namespace {
KernelOptions g_options;
std::atomic<uint64_t> g_generation{0};

template <class E, size_t N>
E parse_enum(const std::string& s, const char* what, const E (&values)[N]) {
  std::string names;
  for (E v : values) {
    if (s == name(v)) return v;
    names += names.empty() ? "" : ", ";
    names += name(v);
  }
  throw Error(detail::cat(what, ": '", s, "' is not one of ", names));
}
}  // namespace

bool operator==(const KernelOptions& a, const KernelOptions& b) {
  return a.depthwise == b.depthwise && a.pointwise == b.pointwise && a.depsep == b.depsep &&
         a.conv_search == b.conv_search && a.deterministic == b.deterministic &&
         a.conv_workspace_mb == b.conv_workspace_mb &&
         a.pointwise_scratch_mb == b.pointwise_scratch_mb;
}

const KernelOptions& kernel_options() { return g_options; }

void set_kernel_options(const KernelOptions& options) {
  DSC_CHECK(options.conv_workspace_mb >= 0, "kernel options: conv workspace of ",
            options.conv_workspace_mb, " MiB (expected >= 0)");
  DSC_CHECK(options.pointwise_scratch_mb >= 1, "kernel options: pointwise scratch of ",
            options.pointwise_scratch_mb, " MiB (expected >= 1)");
  g_options = options;
  ++g_generation;
}

uint64_t kernel_options_generation() { return g_generation.load(); }

const char* name(KernelOptions::Depthwise v) {
  switch (v) {
    case KernelOptions::Depthwise::Own:
      return "own";
    case KernelOptions::Depthwise::Naive:
      return "naive";
    case KernelOptions::Depthwise::Cudnn:
      return "cudnn";
  }
  return "?";
}
const char* name(KernelOptions::Pointwise v) {
  return v == KernelOptions::Pointwise::Cublas ? "cublas" : "cudnn";
}
const char* name(KernelOptions::DepSep v) {
  return v == KernelOptions::DepSep::Fused ? "fused" : "composed";
}
const char* name(KernelOptions::ConvSearch v) {
  return v == KernelOptions::ConvSearch::Benchmark ? "benchmark" : "heuristic";
}

KernelOptions::Depthwise parse_depthwise(const std::string& s, const char* what) {
  using D = KernelOptions::Depthwise;
  return parse_enum(s, what, {D::Own, D::Naive, D::Cudnn});
}
KernelOptions::Pointwise parse_pointwise(const std::string& s, const char* what) {
  using P = KernelOptions::Pointwise;
  return parse_enum(s, what, {P::Cublas, P::Cudnn});
}
KernelOptions::DepSep parse_depsep(const std::string& s, const char* what) {
  using D = KernelOptions::DepSep;
  return parse_enum(s, what, {D::Fused, D::Composed});
}
KernelOptions::ConvSearch parse_conv_search(const std::string& s, const char* what) {
  using C = KernelOptions::ConvSearch;
  return parse_enum(s, what, {C::Benchmark, C::Heuristic});
}

std::string describe(const KernelOptions& o) {
  return detail::cat("depthwise=", name(o.depthwise), " pointwise=", name(o.pointwise),
                     " depsep=", name(o.depsep), " conv-search=", name(o.conv_search),
                     " deterministic=", o.deterministic ? "on" : "off");
}

}  // namespace dsc
