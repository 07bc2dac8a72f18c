// The `bench` program's command line: `bench layer`, `bench sweep` and `bench device` (CLI11
// subcommands) on top of bench_layer.h and bench_device.h. Driven through bench_main so tests need
// not spawn processes. Exit codes: 0 success (and --help), 2 a usage error (unknown option,
// malformed or impossible value; the message names the flag), 1 a run-time failure (e.g. no GPU
// for --device cuda). Tested in tests/apps/test_bench.cpp.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "apps/lib/bench_layer.h"

namespace dsc::bench {

struct BenchHooks {
  // Called before each layer/sweep point is built; may throw (tests inject out-of-memory here).
  std::function<void(const LayerSpec&)> before_point;
};

// args without the program name, e.g. {"layer", "--size", "56"}.
int bench_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const BenchHooks& hooks = {});

}  // namespace dsc::bench
