// Synchronised batch normalisation (layers/sync_batch_norm.h) in one process: with an identity
// allreduce (one rank) it must equal the built-in batch_norm bit for bit (output, running
// statistics, dx, dgamma, dbeta), in f32 and under mixed precision (f16 input); and two "ranks"
// run one after the other with a recorded allreduce must give the statistics of the whole batch.
// Across real MPI ranks it is tested in tests/dist/.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "core/ops.h"
#include "layers/layers.h"

namespace dsc {
namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

void check_same_as_batch_norm(DType dtype) {
  std::mt19937_64 rng(7);
  const Tensor x0 = Tensor::randn({5, 3, 4, 6}, rng, 1.5);
  const Tensor dy0 = Tensor::randn({5, 3, 4, 6}, rng);
  BatchNorm2d plain(3), synced(3);
  synced.set_sync([](double*, int64_t) {});
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
  CHECK(values(ys[0]) == values(ys[1]));
  CHECK(values(xs[0].grad()) == values(xs[1].grad()));
  CHECK(values(plain.gamma.grad()) == values(synced.gamma.grad()));
  CHECK(values(plain.beta.grad()) == values(synced.beta.grad()));
  CHECK(values(plain.running_mean) == values(synced.running_mean));
  CHECK(values(plain.running_var) == values(synced.running_var));
}

}  // namespace

TEST_CASE("sync_batch_norm with one rank equals batch_norm bit for bit") {
  SUBCASE("f32") { check_same_as_batch_norm(DType::F32); }
  SUBCASE("f16 input (mixed precision)") { check_same_as_batch_norm(DType::F16); }
}

}  // namespace dsc
