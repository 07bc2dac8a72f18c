// The README's "Writing a layer" examples, compiled and checked: a layer composed from existing
// ops (a residual block) and a layer with its own op and backward rule (LeakyReLU). If these
// break, the README is wrong.
#include <doctest/doctest.h>

#include <functional>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "layers/layers.h"

namespace {

// ---- README example 1: compose existing ops; backward comes for free ------------------------
class ResidualBlock : public dsc::Module {
 public:
  ResidualBlock(int channels, std::mt19937_64& rng)
      : conv_(register_module("conv", std::make_shared<dsc::Conv2d>(
                                          channels, channels, 3, dsc::Conv2dOptions{1, 1, true},
                                          rng))) {}
  dsc::Tensor forward(const dsc::Tensor& x) override {
    return dsc::ops::relu(dsc::ops::add(x, conv_->forward(x)));
  }
  std::string name() const override { return "ResidualBlock"; }

 private:
  std::shared_ptr<dsc::Conv2d> conv_;
};

// ---- README example 2: a new op with its own backward rule (CPU, f32/f64) ----------------------
struct LeakyReluNode : dsc::Node {
  float slope = 0.01f;
  const char* name() const override { return "leaky_relu"; }
  std::vector<dsc::Tensor> backward(const dsc::Tensor& dy) override {
    const dsc::Tensor& x = inputs[0];
    dsc::Tensor dx = dsc::Tensor::empty(x.shape(), x.dtype());
    auto run = [&]<class T>() {
      const T* xp = x.data<T>();
      const T* g = dy.data<T>();
      T* d = dx.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) d[i] = xp[i] > 0 ? g[i] : T(slope) * g[i];
    };
    x.dtype() == dsc::DType::F64 ? run.operator()<double>() : run.operator()<float>();
    return {dx};
  }
};

class LeakyReLU : public dsc::Module {
 public:
  explicit LeakyReLU(float slope = 0.01f) : slope_(slope) {}
  dsc::Tensor forward(const dsc::Tensor& x) override {
    dsc::Tensor y = dsc::Tensor::empty(x.shape(), x.dtype());
    auto run = [&]<class T>() {
      const T* xp = x.data<T>();
      T* yp = y.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) yp[i] = xp[i] > 0 ? xp[i] : T(slope_) * xp[i];
    };
    x.dtype() == dsc::DType::F64 ? run.operator()<double>() : run.operator()<float>();
    if (dsc::needs_grad({&x})) {
      auto node = std::make_shared<LeakyReluNode>();
      node->slope = slope_;
      node->inputs = {x};
      dsc::record(y, node);
    }
    return y;
  }
  std::string name() const override { return "LeakyReLU"; }

 private:
  float slope_;
};

// Central differences of sum(f(x) * r) in f64.
double numeric_grad(const std::function<dsc::Tensor(const dsc::Tensor&)>& f, dsc::Tensor x,
                    const dsc::Tensor& r, int64_t i) {
  const double h = 1e-6;
  double* p = x.data<double>();
  const double keep = p[i];
  p[i] = keep + h;
  const double up = dsc::ops::sum(dsc::ops::mul(f(x), r)).item();
  p[i] = keep - h;
  const double down = dsc::ops::sum(dsc::ops::mul(f(x), r)).item();
  p[i] = keep;
  return (up - down) / (2 * h);
}

}  // namespace

TEST_CASE("README example: a residual block built from existing ops trains") {
  std::mt19937_64 rng(7);
  ResidualBlock block(5, rng);
  CHECK(block.parameters().size() == 2);  // conv.weight, conv.bias
  CHECK(block.parameters()[0].name == "conv.weight");
  dsc::Tensor x = dsc::Tensor::randn({2, 5, 6, 7}, rng);
  dsc::Tensor y = block(x);
  CHECK(y.shape() == dsc::Shape{2, 5, 6, 7});
  // y = relu(x + conv(x)) elementwise.
  dsc::Tensor conv = dsc::ops::conv2d(x, block.parameters()[0].tensor,
                                      block.parameters()[1].tensor, 1, 1);
  const auto xv = x.to_vector(), cv = conv.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < yv.size(); ++i) CHECK(yv[i] == doctest::Approx(std::max(0.0, xv[i] + cv[i])));
  dsc::ops::sum(y).backward();
  CHECK(block.parameters()[0].tensor.grad().defined());
}

TEST_CASE("README example: LeakyReLU's own backward rule matches finite differences") {
  std::mt19937_64 rng(11);
  LeakyReLU layer(0.1f);
  std::vector<double> v(3 * 4 * 5);
  std::uniform_real_distribution<double> mag(0.05, 2.0);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (i % 3 == 0 ? -1 : 1) * mag(rng);  // off the kink
  dsc::Tensor x = dsc::Tensor::from(v, {3, 4, 5}, dsc::DType::F64);
  x.set_requires_grad(true);
  dsc::Tensor r = dsc::Tensor::randn({3, 4, 5}, rng, 1.0, dsc::DType::F64);
  dsc::ops::sum(dsc::ops::mul(layer(x), r)).backward();
  const auto g = x.grad().to_vector();
  dsc::NoGradGuard no_grad;
  auto f = [&](const dsc::Tensor& in) { return layer(in); };
  dsc::Tensor probe = x.detach().clone();
  for (int64_t i = 0; i < x.numel(); ++i) {
    CHECK(g[i] == doctest::Approx(numeric_grad(f, probe, r, i)).epsilon(1e-6));
  }
}

TEST_CASE("batch_norm in eval mode: forward works, a backward through it fails loudly") {
  dsc::BatchNorm2d bn(3);
  std::mt19937_64 rng(5);
  dsc::Tensor x = dsc::Tensor::randn({2, 3, 4, 4}, rng);
  bn.eval();
  dsc::Tensor y = bn(x);
  CHECK(y.shape() == x.shape());
  try {
    dsc::ops::sum(y).backward();
    FAIL("expected an error");
  } catch (const dsc::Error& e) {
    CHECK(std::string(e.what()).find("eval mode") != std::string::npos);
  }
}
