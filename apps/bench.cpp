// `bench`: the seed article's analysis as tools. `bench layer` times one normal vs one
// depthwise-separable convolution through the framework's ops (conv/sec, FLOP/s in both
// conventions, modelled memory throughput, NVML utilisation on a GPU, % of roofline);
// `bench sweep` repeats it over channel widths; `bench device` measures the roofline ceilings.
// Everything lives in apps/lib/bench_*.{h,cpp} (tested in tests/apps/test_bench.cpp).
#include <iostream>
#include <string>
#include <vector>

#include "apps/lib/bench_cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return dsc::bench::bench_main(args, std::cout, std::cerr);
}
