// ops::global_avg_pool2d and the GlobalAvgPool2d layer (the worked example of core/README.md):
// forward against a naive double loop in f32 and f64 (f64: 1e-12 relative; f32: 1e-6 relative to the
// output's magnitude, a few ulps of sums of at most 63 values), f16 against f32 on the same values,
// backward against central finite differences in f64 (check.h), a layer between convolutions and a
// Linear head, and the refusals of bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/backend.h"
#include "layers/layers.h"

namespace dsc {
namespace {

using test::check_close;
using test::check_gradients;
using test::check_throws_with;
using test::weighted_sum;

// The mean of each (n, c) plane, one plane at a time, in double.
std::vector<double> naive_global_avg_pool2d(const std::vector<double>& x, int64_t planes,
                                            int64_t plane_size) {
  std::vector<double> y(planes);
  for (int64_t p = 0; p < planes; ++p) {
    double s = 0;
    for (int64_t i = 0; i < plane_size; ++i) s += x[p * plane_size + i];
    y[p] = s / double(plane_size);
  }
  return y;
}

struct Case {
  int n, c, h, w;
};
// 1x1 planes (the mean is the value), odd sizes, one image, and an 8x8 map like a network's head.
const Case kCases[] = {{2, 3, 1, 1}, {3, 5, 7, 9}, {1, 4, 2, 3}, {4, 6, 8, 8}};

TEST_CASE("global_avg_pool2d forward: the mean of each plane, f32 and f64") {
  std::mt19937_64 rng(71);
  for (const Case& cs : kCases)
    for (DType t : {DType::F32, DType::F64}) {
      // Shifted away from zero so that a wrong divisor or a dropped element shows.
      Tensor x = Tensor::uniform({cs.n, cs.c, cs.h, cs.w}, rng, -1.0, 3.0, t);
      Tensor y = ops::global_avg_pool2d(x);
      REQUIRE(y.shape() == Shape{cs.n, cs.c});
      const std::vector<double> want =
          naive_global_avg_pool2d(x.to_vector(), int64_t(cs.n) * cs.c, int64_t(cs.h) * cs.w);
      const double rtol = t == DType::F64 ? 1e-12 : 1e-6;
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::abs(v));
      check_close(y, want, rtol * scale, rtol,
                  "global_avg_pool2d " + std::to_string(cs.h) + "x" + std::to_string(cs.w) + " " +
                      dtype_name(t));
    }
}

TEST_CASE("global_avg_pool2d forward in f16: f32 arithmetic, one rounding") {
  std::mt19937_64 rng(72);
  Tensor x32 = Tensor::uniform({2, 3, 5, 6}, rng, 0.5, 2.0, DType::F32).to(DType::F16).to(DType::F32);
  Tensor y16 = ops::global_avg_pool2d(x32.to(DType::F16));
  CHECK(y16.dtype() == DType::F16);
  // The f32 result rounded once to f16: within half an f16 ulp (2^-11 relative) of it.
  check_close(y16, ops::global_avg_pool2d(x32).to_vector(), 0, 1.0 / 2048, "global_avg_pool2d f16");
}

TEST_CASE("grad: global_avg_pool2d against finite differences (f64)") {
  std::mt19937_64 rng(73);
  for (const Case& cs : kCases) {
    Tensor x = Tensor::uniform({cs.n, cs.c, cs.h, cs.w}, rng, -1.0, 1.0, DType::F64);
    x.set_requires_grad(true);
    Tensor r = Tensor::randn({cs.n, cs.c}, rng, 1.0, DType::F64);
    test::GradCheckOptions opt;
    opt.max_samples = 1 << 20;  // every element
    const auto g = check_gradients("global_avg_pool2d " + std::to_string(cs.h) + "x" +
                                       std::to_string(cs.w),
                                   [&] { return weighted_sum(ops::global_avg_pool2d(x), r); }, {x},
                                   opt);
    // Every element of a plane gets that plane's weight divided by H * W.
    const std::vector<double> rv = r.to_vector();
    const int64_t hw = int64_t(cs.h) * cs.w;
    for (size_t i = 0; i < g[0].size(); ++i)
      REQUIRE(std::abs(g[0][i] - rv[i / hw] / double(hw)) <= 1e-12);
  }
}

TEST_CASE("GlobalAvgPool2d layer: a convolution head into Linear trains through it") {
  std::mt19937_64 rng(74);
  auto net = std::make_shared<Sequential>();
  net->add("conv", std::make_shared<Conv2d>(3, 8, 3, Conv2dOptions{1, 1, true}, rng));
  net->add("relu", std::make_shared<ReLU>());
  net->add("pool", std::make_shared<GlobalAvgPool2d>());
  net->add("fc", std::make_shared<Linear>(8, 10, rng));
  CHECK(GlobalAvgPool2d().name() == "GlobalAvgPool2d");
  CHECK(GlobalAvgPool2d().parameters().empty());
  Tensor x = Tensor::randn({4, 3, 6, 6}, rng);
  Tensor y = net->forward(x);
  CHECK(y.shape() == Shape{4, 10});
  Tensor labels = Tensor::from({1, 7, 3, 0}, {4}, DType::I32);
  ops::cross_entropy(y, labels).backward();
  // The gradient reaches the convolution below the pooling.
  const NamedTensor w = net->parameters().at(0);
  REQUIRE(w.name == "conv.weight");
  double norm = 0;
  for (double v : w.tensor.grad().to_vector()) norm += v * v;
  CHECK(norm > 0);
}

TEST_CASE("global_avg_pool2d refuses bad input, naming the op and the shape") {
  check_throws_with([] { ops::global_avg_pool2d(Tensor::zeros({2, 3, 4})); },
                    {"global_avg_pool2d", "[2, 3, 4]", "[N, C, H, W]"}, "3-d input");
  check_throws_with([] { ops::global_avg_pool2d(Tensor::zeros({2, 3, 0, 4})); },
                    {"global_avg_pool2d", "[2, 3, 0, 4]", "H, W >= 1"}, "empty plane");
  Tensor y = Tensor::empty({2, 4});
  check_throws_with([&] { kernels(Device::CPU).global_avg_pool2d_forward(Tensor::zeros({2, 3, 4, 4}), y); },
                    {"global_avg_pool2d", "[2, 3, 4, 4]", "[2, 4]"}, "table entry, wrong output");
}

}  // namespace
}  // namespace dsc
