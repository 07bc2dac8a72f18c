// Kernel-choice flags (see kernel_flags.h).
#include "train/kernel_flags.h"

namespace dsc {

void add_kernel_flags(CLI::App& app, KernelFlags& f) {
  const std::string group = "Kernel choices (GPU)";
  app.add_option("--depthwise", f.depthwise,
                 "depthwise convolutions: own (tiled kernels) | naive (own, one thread per "
                 "output) | cudnn (grouped convolution)")
      ->check(CLI::IsMember({"own", "naive", "cudnn"}))
      ->capture_default_str()
      ->group(group);
  app.add_option("--pointwise", f.pointwise,
                 "1x1 convolutions: cublas (strided-batched GEMMs) | cudnn")
      ->check(CLI::IsMember({"cublas", "cudnn"}))
      ->capture_default_str()
      ->group(group);
  app.add_option("--depsep", f.depsep,
                 "depthwise-separable layers: fused (one kernel per direction where possible) | "
                 "composed (depthwise + 1x1 + ReLU)")
      ->check(CLI::IsMember({"fused", "composed"}))
      ->capture_default_str()
      ->group(group);
  app.add_option("--conv-search", f.conv_search,
                 "cuDNN algorithms: benchmark (each candidate timed on first use) | heuristic")
      ->check(CLI::IsMember({"benchmark", "heuristic"}))
      ->capture_default_str()
      ->group(group);
  app.add_option("--conv-workspace-mb", f.conv_workspace_mb,
                 "largest cuDNN workspace an algorithm may use (also at most half the free memory)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(group);
  app.add_flag("--nondeterministic", f.nondeterministic,
               "allow cuDNN algorithms that use atomics (results may then differ in the last bits "
               "from run to run)")
      ->group(group);
}

KernelOptions to_kernel_options(const KernelFlags& f) {
  KernelOptions o;
  o.depthwise = parse_depthwise(f.depthwise, "--depthwise");
  o.pointwise = parse_pointwise(f.pointwise, "--pointwise");
  o.depsep = parse_depsep(f.depsep, "--depsep");
  o.conv_search = parse_conv_search(f.conv_search, "--conv-search");
  o.conv_workspace_mb = f.conv_workspace_mb;
  o.deterministic = !f.nondeterministic;
  return o;
}

}  // namespace dsc
