// End to end on CUDA: the seed CNN (both kinds, 16 channels, 32x32 inputs, batch 16) trained for 5
// Adam steps on the same random batches on the CPU and on the GPU, from the same initial weights;
// and a small copy (8 channels, 16x16 inputs, batch 4) that the host emulator runs in seconds.
// The losses must agree step by step: f32 within 2e-3 relative (Adam amplifies the last-bit
// differences of near-zero gradients a little), and mixed precision (f16 activations, f32 master
// weights, loss scaled by 1024) within 3e-2. Also checks that evaluation (BatchNorm running
// statistics) and count_correct agree afterwards. Skipped where no usable GPU is present.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"
#include "layers/models.h"
#include "optim/optimizer.h"

using namespace dsc;
using namespace dsc::test;

namespace {

struct Batch {
  Tensor images, labels;  // host
};

// Network and batch sizes of one comparison.
struct Size {
  int channels, image, batch;
};
constexpr Size kFull{16, 32, 16};
constexpr Size kSmall{8, 16, 4};

std::vector<Batch> make_batches(int count, int n, int image, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> cls(0, 9);
  std::vector<Batch> out;
  for (int i = 0; i < count; ++i) {
    std::vector<double> l(n);
    for (double& v : l) v = cls(rng);
    out.push_back(
        {Tensor::uniform({n, 3, image, image}, rng, -1.0, 1.0), Tensor::from(l, {n}, DType::I32)});
  }
  return out;
}

struct RunResult {
  std::vector<double> losses;
  double eval_loss = 0;
  int64_t eval_correct = 0;
};

RunResult train(ModelKind kind, Device device, bool amp, Size size,
                const std::vector<Batch>& batches) {
  SeedCnnOptions opt;
  opt.channels = size.channels;
  opt.image = size.image;
  auto model = make_seed_cnn(kind, 1234, opt);
  model->to(device);
  Adam adam(*model);
  const float loss_scale = amp ? 1024.0f : 1.0f;
  RunResult r;
  model->train();
  for (size_t i = 0; i + 1 < batches.size(); ++i) {
    Tensor x = batches[i].images.to(device), y = batches[i].labels.to(device);
    if (amp) x = x.to(DType::F16);
    adam.zero_grad();
    Tensor logits = model->forward(x);
    Tensor loss = ops::cross_entropy(logits, y);
    if (amp) {
      ops::scale(loss, loss_scale).backward();
    } else {
      loss.backward();
    }
    adam.step(loss_scale);
    r.losses.push_back(loss.item());
  }
  model->eval();
  NoGradGuard no_grad;
  Tensor x = batches.back().images.to(device), y = batches.back().labels.to(device);
  if (amp) x = x.to(DType::F16);
  Tensor logits = model->forward(x);
  r.eval_loss = ops::cross_entropy(logits, y).item();
  r.eval_correct = ops::count_correct(logits, y);
  return r;
}

void compare_runs(ModelKind kind, bool amp, Size size) {
  // 5 training steps + 1 eval batch
  const std::vector<Batch> batches = make_batches(6, size.batch, size.image, 77);
  const RunResult cpu = train(kind, Device::CPU, amp, size, batches);
  const RunResult gpu = train(kind, Device::CUDA, amp, size, batches);
  const double tol = amp ? 3e-2 : 2e-3;
  const std::string what = std::string(model_kind_name(kind)) + (amp ? " amp" : " f32");
  REQUIRE(cpu.losses.size() == 5);
  REQUIRE(gpu.losses.size() == 5);
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    CAPTURE(i);
    MESSAGE(what, " step ", i + 1, ": cpu ", cpu.losses[i], " cuda ", gpu.losses[i]);
    CHECK(std::isfinite(gpu.losses[i]));
    CHECK(std::abs(gpu.losses[i] - cpu.losses[i]) <= tol * std::max(1.0, std::abs(cpu.losses[i])));
  }
  CHECK(std::abs(gpu.eval_loss - cpu.eval_loss) <= tol * std::max(1.0, std::abs(cpu.eval_loss)));
  CHECK(std::abs(double(gpu.eval_correct - cpu.eval_correct)) <= (amp ? 2.0 : 1.0));
}

}  // namespace

// Full size: minutes under the emulator, so real GPUs only.
TEST_CASE("cuda training: seed CNN, normal convolutions, f32" * doctest::skip(no_real_gpu())) {
  compare_runs(ModelKind::Normal, false, kFull);
}

TEST_CASE("cuda training: seed CNN, depthwise-separable, f32" * doctest::skip(no_real_gpu())) {
  compare_runs(ModelKind::DepSep, false, kFull);
}

TEST_CASE("cuda training: seed CNN, normal convolutions, mixed precision" *
          doctest::skip(no_real_gpu())) {
  compare_runs(ModelKind::Normal, true, kFull);
}

TEST_CASE("cuda training: seed CNN, depthwise-separable, mixed precision" *
          doctest::skip(no_real_gpu())) {
  compare_runs(ModelKind::DepSep, true, kFull);
}

TEST_CASE("cuda small training: seed CNN, normal convolutions, f32" * doctest::skip(no_cuda())) {
  compare_runs(ModelKind::Normal, false, kSmall);
}

TEST_CASE("cuda small training: seed CNN, depthwise-separable, f32" * doctest::skip(no_cuda())) {
  compare_runs(ModelKind::DepSep, false, kSmall);
}

TEST_CASE("cuda small training: seed CNN, normal convolutions, mixed precision" *
          doctest::skip(no_cuda())) {
  compare_runs(ModelKind::Normal, true, kSmall);
}

TEST_CASE("cuda small training: seed CNN, depthwise-separable, mixed precision" *
          doctest::skip(no_cuda())) {
  compare_runs(ModelKind::DepSep, true, kSmall);
}
