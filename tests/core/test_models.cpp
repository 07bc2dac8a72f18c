// The seed's two models (layers/models.h): parameter counts as Keras prints them, the summary,
// output shapes, Keras' He-uniform initialisation (bounds and variance, with Keras' fan-ins), and
// that each model, trained through the public C++ API (ParameterBuffer + Adam + backward),
// memorises a fixed small batch, and that evaluating between steps changes nothing the training
// sees.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "optim/optimizer.h"

namespace dsc {
namespace {

// Keras' counts from the layer formulas: conv M N C K + K; separable M N C + C K + K;
// BatchNormalization 4 C (2 C trainable); Dense I O + O.
struct Counts {
  int64_t total, trainable;
};
Counts keras_counts(ModelKind kind) {
  const int64_t c = 128, k = 3 * 3;
  int64_t convs = 0, in = 3;
  for (int i = 0; i < 4; ++i) {
    convs += kind == ModelKind::Normal ? k * in * c + c : k * in + in * c + c;
    in = c;
  }
  const int64_t dense = 8 * 8 * c * 10 + 10;
  return {convs + 4 * c + dense, convs + 2 * c + dense};
}

TEST_CASE("models: parameter counts as Keras prints them") {
  CHECK(keras_counts(ModelKind::Normal).total == 528778);  // the seed runs' published counts
  CHECK(keras_counts(ModelKind::Normal).trainable == 528522);
  CHECK(keras_counts(ModelKind::DepSep).total == 135973);
  CHECK(keras_counts(ModelKind::DepSep).trainable == 135717);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    INFO(std::string(model_kind_name(kind)));
    auto net = make_seed_cnn(kind, 1);
    const ParamCount pc = count_parameters(*net);
    CHECK(pc.total == keras_counts(kind).total);
    CHECK(pc.trainable == keras_counts(kind).trainable);
    CHECK(pc.non_trainable() == 256);
  }
  CHECK(parse_model_kind("normal") == ModelKind::Normal);
  CHECK(parse_model_kind("depsep") == ModelKind::DepSep);
  CHECK(std::string(model_kind_name(ModelKind::DepSep)) == "depsep");
  test::check_throws_with([] { parse_model_kind("mobilenet"); }, {"mobilenet", "normal", "depsep"},
                          "unknown model");
}

TEST_CASE("models: summary prints the layers and the Keras totals") {
  auto normal = make_seed_cnn(ModelKind::Normal, 1);
  const std::string s = summary(*normal, {128, 3, 32, 32});
  CHECK(s.find("Total params: 528,778") != std::string::npos);
  CHECK(s.find("Trainable params: 528,522") != std::string::npos);
  CHECK(s.find("Non-trainable params: 256") != std::string::npos);
  CHECK(s.find("(None, 128, 32, 32)") != std::string::npos);
  CHECK(s.find("(None, 128, 8, 8)") != std::string::npos);
  CHECK(s.find("(None, 8192)") != std::string::npos);
  CHECK(s.find("(None, 10)") != std::string::npos);
  CHECK(s.find("147,584") != std::string::npos);  // conv2's row
  CHECK(s.find("81,930") != std::string::npos);   // the dense layer's row
  for (const char* layer : {"conv1", "conv4", "relu)", "pool", "bn", "flatten", "fc"}) {
    CHECK_MESSAGE(s.find(layer) != std::string::npos, layer);
  }
  CHECK(normal->training());  // summary() restores the mode it found
  auto depsep = make_seed_cnn(ModelKind::DepSep, 1);
  const std::string d = summary(*depsep, {1, 3, 32, 32});
  CHECK(d.find("Total params: 135,973") != std::string::npos);
  CHECK(d.find("Trainable params: 135,717") != std::string::npos);
  CHECK(d.find("17,664") != std::string::npos);  // a 128 -> 128 separable block
  CHECK(d.find("DepSepConv2d") != std::string::npos);
  CHECK(d.find(", relu]") != std::string::npos);  // the activation is part of the block
}

TEST_CASE("models: output shape [N, 10], same seed -> same model") {
  std::mt19937_64 rng(3);
  Tensor x = Tensor::uniform({2, 3, 32, 32}, rng, -1, 1);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    INFO(std::string(model_kind_name(kind)));
    auto a = make_seed_cnn(kind, 5), b = make_seed_cnn(kind, 5), c = make_seed_cnn(kind, 6);
    NoGradGuard no_grad;
    Tensor ya = a->forward(x);
    CHECK(ya.shape() == Shape{2, 10});
    CHECK(ya.dtype() == DType::F32);
    CHECK(ya.to_vector() == b->forward(x).to_vector());
    CHECK(ya.to_vector() != c->forward(x).to_vector());
  }
}

// Keras' fan-in of each weight: conv kernel C*R*S, depthwise kernel C*R*S too (Keras computes it
// from the (R, S, C, 1) shape as R*S*C), pointwise C, Dense in_features.
int64_t keras_fan_in(const std::string& name, const Tensor& w) {
  if (w.ndim() == 2) return w.dim(1);
  if (name.find("depthwise") != std::string::npos) return w.dim(0) * w.dim(2) * w.dim(3);
  return w.dim(1) * w.dim(2) * w.dim(3);
}

TEST_CASE("models: He-uniform initial weights with Keras' fan-ins") {
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    auto net = make_seed_cnn(kind, 11);
    for (const NamedTensor& p : net->parameters()) {
      INFO(p.name);
      const std::vector<double> v = p.tensor.to_vector();
      if (p.name.find("weight") == std::string::npos) {
        // Biases start at zero, BatchNorm at gamma = 1, beta = 0.
        const double want = p.name.find("gamma") != std::string::npos ? 1.0 : 0.0;
        CHECK(v == std::vector<double>(v.size(), want));
        continue;
      }
      const double limit = std::sqrt(6.0 / double(keras_fan_in(p.name, p.tensor)));
      double mx = 0, mean = 0, sq = 0;
      for (double x : v) mx = std::max(mx, std::abs(x)), mean += x, sq += x * x;
      mean /= double(v.size());
      sq /= double(v.size());
      CHECK(mx <= limit);
      if (v.size() >= 100) CHECK(mx >= 0.95 * limit);  // P(all |w| < 0.95 limit) = 0.95^n
      if (v.size() >= 1000) {
        // U(-a, a): variance a^2 / 3; the sample variance's relative std error is 0.9 / sqrt(n)
        // (<= 2.7% here), the mean's std error a / sqrt(3 n).
        CHECK(sq == doctest::Approx(limit * limit / 3).epsilon(0.1));
        CHECK(std::abs(mean) < 5 * limit / std::sqrt(3.0 * double(v.size())));
      }
    }
  }
}

struct MemoriseResult {
  std::vector<double> losses;
  int steps_to_target = -1;
  double seconds = 0;
};

// Trains `net` on the fixed batch with Adam (lr 1e-3) through the public API until the loss is
// below `target` or `max_steps` have run.
MemoriseResult memorise(Sequential& net, const Tensor& x, const Tensor& labels, double target,
                        int max_steps) {
  const auto t0 = std::chrono::steady_clock::now();
  Adam opt(net, AdamOptions{.lr = 1e-3f});
  MemoriseResult r;
  for (int s = 0; s < max_steps; ++s) {
    opt.zero_grad();
    Tensor loss = ops::cross_entropy(net.forward(x), labels);
    r.losses.push_back(loss.item());
    if (loss.item() < target) {
      r.steps_to_target = s;
      break;
    }
    loss.backward();
    opt.step();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

TEST_CASE("models: each seed model memorises a fixed batch of 8 images") {
  std::mt19937_64 rng(2024);
  Tensor x = Tensor::uniform({8, 3, 32, 32}, rng, -1, 1);  // like x / 127.5 - 1
  Tensor labels = test::random_labels(8, 10, rng);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    INFO(std::string(model_kind_name(kind)));
    auto net = make_seed_cnn(kind, 7);
    const MemoriseResult r = memorise(*net, x, labels, 0.05, 60);
    MESSAGE(std::string(model_kind_name(kind)), ": loss ", r.losses.front(), " -> ", r.losses.back(), " in ",
            r.losses.size(), " evaluations, ", r.seconds, " s");
    CHECK(r.losses.front() > 1.0);  // starts near chance (ln 10 = 2.3), not already memorised
    CHECK(r.steps_to_target >= 0);
    CHECK(r.losses[r.losses.size() / 2] < r.losses.front());
    // Every label of the batch is now predicted (training mode: BatchNorm's running statistics
    // have seen too few steps for evaluation mode to be meaningful yet).
    NoGradGuard no_grad;
    CHECK(ops::count_correct(net->forward(x), labels) == 8);
  }
}

TEST_CASE("models: the same backward pass twice gives bit-identical gradients (f32 and f16)") {
  // The CPU backend's reductions must not depend on thread timing (Winograd's backward-filter
  // once did: its per-thread partial sums covered dynamically scheduled blocks).
  std::mt19937_64 rng(78);
  const Tensor x32 = Tensor::uniform({4, 3, 32, 32}, rng, -1, 1);
  const Tensor labels = test::random_labels(4, 10, rng);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep})
    for (DType t : {DType::F32, DType::F16}) {
      INFO(std::string(model_kind_name(kind)), " ", dtype_name(t));
      auto net = make_seed_cnn(kind, 6);
      ParameterBuffer buf(*net);
      const Tensor x = x32.to(t);
      std::vector<double> grads[3];
      for (auto& g : grads) {
        buf.zero_grad();
        ops::cross_entropy(net->forward(x), labels).backward();
        g = buf.grads().to_vector();
      }
      CHECK(test::max_abs(grads[0]) > 0);
      CHECK(grads[1] == grads[0]);
      CHECK(grads[2] == grads[0]);
    }
}

TEST_CASE("models: a CastCache (one cast of all parameters) changes nothing but the kernel count") {
  std::mt19937_64 rng(77);
  const Tensor x = Tensor::uniform({4, 3, 32, 32}, rng, -1, 1).to(DType::F16);
  const Tensor labels = test::random_labels(4, 10, rng);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    INFO(std::string(model_kind_name(kind)));
    auto net = make_seed_cnn(kind, 5);
    ParameterBuffer buf(*net);
    // The same forward and backward twice: per-parameter casts, then through the cache.
    std::vector<double> logits[2], grads[2];
    for (int cached = 0; cached < 2; ++cached) {
      buf.zero_grad();
      std::optional<CastCache> cache;
      if (cached) {
        cache.emplace(*net, buf.values(), DType::F16);
        REQUIRE(CastCache::current() == &*cache);
        // Every parameter used in f16 is a view of the one converted buffer.
        for (const NamedTensor& p : net->parameters()) {
          const Tensor v = compute_view(p.tensor, x);
          CHECK_MESSAGE(v.storage() == cache->converted().storage(), p.name);
          CHECK(v.shape() == p.tensor.shape());
          REQUIRE(v.grad_fn() != nullptr);
          CHECK(std::string(v.grad_fn()->name()) == "cast");
        }
      }
      const Tensor out = net->forward(x);
      logits[cached] = out.to_vector();
      ops::cross_entropy(out, labels).backward();
      grads[cached] = buf.grads().to_vector();
    }
    CHECK(CastCache::current() == nullptr);
    CHECK(logits[0] == logits[1]);  // bit for bit: the same roundings, one kernel instead of many
    CHECK(grads[0] == grads[1]);
    CHECK(test::max_abs(grads[1]) > 0);
  }
  // Only a flat buffer converted to another float dtype.
  auto net = make_seed_cnn(ModelKind::DepSep, 5);
  ParameterBuffer buf(*net);
  CHECK_THROWS_WITH_AS(CastCache(*net, buf.values(), DType::F32),
                       doctest::Contains("another float dtype"), Error);
  CHECK_THROWS_WITH_AS(CastCache(*net, buf.values().reshape({1, -1}), DType::F16),
                       doctest::Contains("flat buffer"), Error);
  // A parameter outside the buffer is cast on its own.
  Linear other(4, 3, rng);
  CastCache cache(*net, buf.values(), DType::F16);
  CHECK(cache.find(other.weight) == nullptr);
  CHECK(compute_view(other.weight, x).storage() != cache.converted().storage());
}


TEST_CASE("models: an evaluation between training steps leaves the training bit-identical") {
  // What train does after every epoch: eval mode, no gradients, forward passes, training mode
  // again. None of it may touch the parameters, BatchNorm's running statistics or Adam's moments
  // and step count, so the steps after it are exactly the steps without it.
  const SeedCnnOptions small{.channels = 8, .convs = 2, .image = 8, .pool = 2};
  std::mt19937_64 rng(11);
  const Tensor x = Tensor::uniform({6, 3, 8, 8}, rng, -1, 1);
  const Tensor labels = Tensor::from(std::vector<double>{1, 3, 5, 7, 9, 0}, {6}, DType::I32);
  const Tensor held_out = Tensor::uniform({5, 3, 8, 8}, rng, -1, 1);
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    CAPTURE(model_kind_name(kind));
    std::vector<double> state[2];
    double eval_out = 0;
    for (int with_eval = 0; with_eval < 2; ++with_eval) {
      auto net = make_seed_cnn(kind, 3, small);
      Adam opt(*net);
      for (int step = 0; step < 6; ++step) {
        if (with_eval && step % 2 == 0) {
          NoGradGuard no_grad;
          net->eval();
          eval_out += test::max_abs(net->forward(held_out).to_vector());
          net->train();
        }
        opt.zero_grad();
        ops::cross_entropy(net->forward(x), labels).backward();
        opt.step();
      }
      opt.zero_grad();  // the moments show in the next update: one more step, then compare
      ops::cross_entropy(net->forward(x), labels).backward();
      opt.step();
      state[with_eval] = opt.parameters().values().to_vector();
      for (const NamedTensor& b : net->buffers()) {
        const std::vector<double> v = b.tensor.to_vector();
        state[with_eval].insert(state[with_eval].end(), v.begin(), v.end());
      }
      CHECK(opt.steps() == 7);
    }
    CHECK(eval_out > 0);
    CHECK(state[0] == state[1]);
  }
}

}  // namespace
}  // namespace dsc
