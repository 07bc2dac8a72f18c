// Synchronised batch normalisation (layers/sync_batch_norm.h) in one process: with an identity
// allreduce (one rank) it must equal the built-in batch_norm (output, running statistics, dx,
// dgamma, dbeta) to rounding, in f32 and under mixed precision (f16 input). The two are separate
// loops: the Release build happens to give the same bits, an -O1 sanitizer build contracts and
// vectorises them differently and differs in the last bit, so the bound is a few units in the
// last place of the dtype, far below any mistake in the formulas (a wrong count, a biased
// variance, a missing term of dx: all 1e-2 or more on these inputs). Across real MPI ranks it is
// tested in tests/dist/.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"
#include "layers/layers.h"

namespace dsc {
namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

// Largest |a - b| over the largest |a|: 0 for equal tensors.
double relative_gap(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = values(a), y = values(b);
  REQUIRE(x.size() == y.size());
  double gap = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    gap = std::max(gap, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(x[i]));
  }
  REQUIRE(scale > 0);  // never compared on zeros
  return gap / scale;
}

void check_same_as_batch_norm(DType dtype) {
  std::mt19937_64 rng(7);
  const Tensor x0 = Tensor::randn({5, 3, 4, 6}, rng, 1.5);
  const Tensor dy0 = Tensor::randn({5, 3, 4, 6}, rng);
  BatchNorm2d plain(3), synced(3);
  synced.set_sync([](Tensor&) {});
  for (BatchNorm2d* bn : {&plain, &synced}) {  // the same non-trivial parameters
    bn->gamma.copy_(Tensor::from({0.5, -1.25, 2.0}, {3}));
    bn->beta.copy_(Tensor::from({0.1, 0.2, -0.3}, {3}));
  }
  std::vector<Tensor> xs, ys;
  for (BatchNorm2d* bn : {&plain, &synced}) {
    Tensor x = x0.to(dtype).detach();
    x.set_requires_grad(true);
    Tensor y = bn->forward(x);
    ops::sum(ops::mul(y, dy0.to(dtype))).backward();
    xs.push_back(x);
    ys.push_back(y);
  }
  // A few units in the last place of the output dtype (f16: 2^-10, f32: 2^-23).
  const double ulp = dtype == DType::F16 ? 1.0 / 1024 : 1.0 / (1 << 23);
  CHECK(relative_gap(ys[0], ys[1]) <= 4 * ulp);
  CHECK(relative_gap(xs[0].grad(), xs[1].grad()) <= 4 * ulp);
  CHECK(relative_gap(plain.gamma.grad(), synced.gamma.grad()) <= 16.0 / (1 << 23));
  CHECK(relative_gap(plain.beta.grad(), synced.beta.grad()) <= 16.0 / (1 << 23));
  CHECK(relative_gap(plain.running_mean, synced.running_mean) <= 4.0 / (1 << 23));
  CHECK(relative_gap(plain.running_var, synced.running_var) <= 4.0 / (1 << 23));
}

// Batch x then x again along N: what one process sees when two ranks hold the same slice.
Tensor twice(const Tensor& t) {
  std::vector<double> v = t.to_vector();
  v.insert(v.end(), v.begin(), v.end());
  Shape s = t.shape();
  s[0] *= 2;
  return Tensor::from(v, s, t.dtype());
}

}  // namespace

// An allreduce that doubles every sum acts as a second rank holding the same slice: the layer
// must then train as batch_norm on the slice batched twice (the count doubles, so the unbiased
// running variance differs from one rank's; dgamma is this rank's half).
TEST_CASE("sync_batch_norm sums every pass over the ranks: a doubling allreduce is two ranks") {
  std::mt19937_64 rng(9);
  const Tensor x0 = Tensor::randn({3, 4, 5, 2}, rng, 1.5);
  const Tensor dy0 = Tensor::randn({3, 4, 5, 2}, rng);
  BatchNorm2d plain(4), synced(4);
  int calls = 0;
  synced.set_sync([&](Tensor& sums) {
    ++calls;
    Tensor copy = sums.clone();
    kernels(Device::CPU).axpy(copy, 1.0, sums);
  });
  for (BatchNorm2d* bn : {&plain, &synced}) {
    bn->gamma.copy_(Tensor::from({0.5, -1.25, 2.0, 0.75}, {4}));
    bn->beta.copy_(Tensor::from({0.1, 0.2, -0.3, 0.0}, {4}));
  }
  Tensor x = x0.detach(), xx = twice(x0);
  x.set_requires_grad(true);
  xx.set_requires_grad(true);
  const Tensor y = synced.forward(x), yy = plain.forward(xx);
  ops::sum(ops::mul(y, dy0)).backward();
  ops::sum(ops::mul(yy, twice(dy0))).backward();
  CHECK(calls == 3);
  const double tol = 8.0 / (1 << 23);
  CHECK(relative_gap(yy.slice0(0, 3), y) <= tol);
  CHECK(relative_gap(xx.grad().slice0(0, 3), x.grad()) <= tol);
  CHECK(relative_gap(plain.running_mean, synced.running_mean) <= tol);
  CHECK(relative_gap(plain.running_var, synced.running_var) <= tol);
  CHECK(relative_gap(plain.gamma.grad(), ops::scale(synced.gamma.grad(), 2.0)) <= 4 * tol);
  CHECK(relative_gap(plain.beta.grad(), ops::scale(synced.beta.grad(), 2.0)) <= 4 * tol);
}

TEST_CASE("sync_batch_norm with one rank equals batch_norm to rounding") {
  SUBCASE("f32") { check_same_as_batch_norm(DType::F32); }
  SUBCASE("f16 input (mixed precision)") { check_same_as_batch_norm(DType::F16); }
}

}  // namespace dsc
