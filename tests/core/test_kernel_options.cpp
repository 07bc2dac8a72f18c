// Kernel options (core/kernel_options.h): defaults, names both ways, parse errors that name the
// flag and the accepted values, refused sizes, the generation counter a backend uses to notice a
// change, and the scoped setter restoring the previous options.
#include <doctest/doctest.h>

#include "core/error.h"
#include "core/kernel_options.h"

using namespace dsc;

TEST_CASE("kernel options: defaults, names and parsing") {
  const KernelOptions d;
  CHECK(d.depthwise == KernelOptions::Depthwise::Own);
  CHECK(d.pointwise == KernelOptions::Pointwise::Cublas);
  CHECK(d.depsep == KernelOptions::DepSep::Fused);
  CHECK(d.conv_search == KernelOptions::ConvSearch::Benchmark);
  CHECK(d.deterministic);
  CHECK(describe(d) ==
        "depthwise=own pointwise=cublas depsep=fused conv-search=benchmark deterministic=on");
  for (auto v : {KernelOptions::Depthwise::Own, KernelOptions::Depthwise::Naive,
                 KernelOptions::Depthwise::Cudnn})
    CHECK(parse_depthwise(name(v), "--depthwise") == v);
  for (auto v : {KernelOptions::Pointwise::Cublas, KernelOptions::Pointwise::Cudnn})
    CHECK(parse_pointwise(name(v), "--pointwise") == v);
  for (auto v : {KernelOptions::DepSep::Fused, KernelOptions::DepSep::Composed})
    CHECK(parse_depsep(name(v), "--depsep") == v);
  for (auto v : {KernelOptions::ConvSearch::Benchmark, KernelOptions::ConvSearch::Heuristic})
    CHECK(parse_conv_search(name(v), "--conv-search") == v);
  CHECK_THROWS_WITH_AS(parse_depthwise("fastest", "--depthwise"),
                       "--depthwise: 'fastest' is not one of own, naive, cudnn", Error);
  CHECK_THROWS_WITH_AS(parse_pointwise("Cublas", "--pointwise"),
                       "--pointwise: 'Cublas' is not one of cublas, cudnn", Error);
  CHECK_THROWS_WITH_AS(parse_depsep("", "--depsep"), "--depsep: '' is not one of fused, composed",
                       Error);
  CHECK_THROWS_WITH_AS(parse_conv_search("find", "--conv-search"),
                       "--conv-search: 'find' is not one of benchmark, heuristic", Error);
}

TEST_CASE("kernel options: setting bumps the generation, the scope restores, bad sizes refused") {
  const KernelOptions before = kernel_options();
  const uint64_t g0 = kernel_options_generation();
  {
    KernelOptions o;
    o.depthwise = KernelOptions::Depthwise::Naive;
    o.deterministic = false;
    const ScopedKernelOptions scope(o);
    CHECK(kernel_options() == o);
    CHECK(kernel_options_generation() > g0);
    CHECK(describe(kernel_options()).find("depthwise=naive") != std::string::npos);
    CHECK(describe(kernel_options()).find("deterministic=off") != std::string::npos);
  }
  CHECK(kernel_options() == before);
  KernelOptions bad;
  bad.conv_workspace_mb = -1;
  CHECK_THROWS_WITH_AS(set_kernel_options(bad), doctest::Contains("conv workspace of -1 MiB"),
                       Error);
  bad = KernelOptions{};
  bad.pointwise_scratch_mb = 0;
  CHECK_THROWS_WITH_AS(set_kernel_options(bad), doctest::Contains("pointwise scratch of 0 MiB"),
                       Error);
  CHECK(kernel_options() == before);  // a refused set changes nothing
}
