// Step graphs on CUDA (core/graph.h): a capture records instead of running and a replay reruns the
// recorded kernels on the inputs' current contents; memory allocated while capturing is handed to
// no one else while the graph lives; host copies, synchronisation and cuDNN's algorithm search
// inside a capture fail it cleanly; and training steps replayed from one graph (seed CNN, Adam, dynamic loss scaling,
// both model kinds) leave every parameter, optimizer state and the loss scale bit-identical to
// the same steps run eagerly. Skipped where no usable GPU is present.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/ops.h"
#include "cuda/cuda_test_util.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "train/step.h"
#ifdef DSC_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

using namespace dsc;
using namespace dsc::test;

namespace {

// No GPU, or graphs switched off (DSC_CUDA_SYNC=1 synchronises after every launch).
bool no_graphs() { return no_cuda() || !StepGraph::supported(Device::CUDA); }

// relu(a * b) on the CPU.
std::vector<double> relu_mul(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector(), out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = std::max(0.0f, static_cast<float>(x[i]) * static_cast<float>(y[i]));
  return out;
}

}  // namespace

TEST_CASE("cuda step graph: a capture records, a replay reruns on the inputs' new contents" *
          doctest::skip(no_graphs())) {
  std::mt19937_64 rng(900);
  const Shape shape{3, 1000};
  Tensor a_host = randn(shape, rng), b_host = randn(shape, rng);
  Tensor a = on_gpu(a_host), b = on_gpu(b_host);
  Tensor out = Tensor::full(shape, 7.0, DType::F32, Device::CUDA);
  StepGraph g(Device::CUDA);
  int host_runs = 0;
  REQUIRE(g.capture([&] {
    ++host_runs;
    Tensor t = ops::relu(ops::mul(a, b));  // temporaries from the graph's pool
    out.copy_(t);
  }));
  CHECK(host_runs == 1);
  CHECK(g.captured());
  const std::vector<double> untouched = out.to_vector();  // recorded, not run
  CHECK(untouched.front() == 7.0);
  CHECK(untouched.back() == 7.0);

  g.replay();
  CHECK(out.to_vector() == relu_mul(a_host, b_host));
  Tensor a2_host = randn(shape, rng);
  a.copy_(on_gpu(a2_host));  // new contents, same storage
  g.replay();
  CHECK(out.to_vector() == relu_mul(a2_host, b_host));
  CHECK(host_runs == 1);
}

TEST_CASE("cuda step graph: a backward through sum() is captured (no host read of dy)" *
          doctest::skip(no_graphs())) {
  std::mt19937_64 rng(903);
  Tensor a_host = randn({4, 33}, rng);
  Tensor a = on_gpu(a_host);
  Tensor w = on_gpu(randn({4, 33}, rng));
  w.set_requires_grad(true);
  w.set_grad(Tensor::zeros({4, 33}, DType::F32, Device::CUDA));
  StepGraph g(Device::CUDA);
  REQUIRE_MESSAGE(g.capture([&] {
    w.zero_grad();
    ops::sum(ops::mul(a, w)).backward();  // d/dw sum(a * w) = a
  }), g.failure());
  g.replay();
  CHECK(w.grad().to_vector() == a_host.to_vector());
  Tensor a2_host = randn({4, 33}, rng);
  a.copy_(on_gpu(a2_host));
  g.replay();
  CHECK(w.grad().to_vector() == a2_host.to_vector());
}

TEST_CASE("cuda step graph: memory allocated while capturing is kept for the graph" *
          doctest::skip(no_graphs())) {
#ifdef DSC_HAVE_CUDA
  const Shape shape{77777};  // a size class no other test uses
  std::set<const void*> in_graph;
  {
    Tensor x = Tensor::full(shape, 1.5, DType::F32, Device::CUDA);
    Tensor out = Tensor::empty(shape, DType::F32, Device::CUDA);
    { Tensor warm = Tensor::empty(shape, DType::F32, Device::CUDA); }  // one free block cached
    StepGraph g(Device::CUDA);
    REQUIRE(g.capture([&] {
      for (int i = 0; i < 3; ++i) {
        Tensor t = ops::mul(x, x);
        in_graph.insert(t.raw());
        out.copy_(t);
      }
    }));
    CHECK(in_graph.size() == 1);  // freed and reused within the capture
    CHECK(cuda::allocator_stats().graph_pool_free_bytes >= size_t(77777) * 4);
    // Outside the capture the same size class gets other blocks while the graph lives.
    std::vector<Tensor> others;
    for (int i = 0; i < 3; ++i) {
      others.push_back(Tensor::full(shape, -2.0, DType::F32, Device::CUDA));
      CHECK(in_graph.count(others.back().raw()) == 0);
    }
    g.replay();
    const std::vector<double> v = out.to_vector();
    CHECK(v[0] == 2.25);
    CHECK(v[77776] == 2.25);
    for (const Tensor& o : others) CHECK(o.to_vector()[100] == -2.0);  // not overwritten
  }
  // The graph is gone: its blocks are ordinary cached blocks again.
  CHECK(cuda::allocator_stats().graph_pool_free_bytes == 0);
  bool reused = false;
  std::vector<Tensor> again;
  for (int i = 0; i < 4; ++i) {
    again.push_back(Tensor::empty(shape, DType::F32, Device::CUDA));
    reused = reused || in_graph.count(again.back().raw()) == 1;
  }
  CHECK(reused);
#endif
}

TEST_CASE("cuda step graph: a host copy or a wait inside a capture fails it cleanly" *
          doctest::skip(no_graphs())) {
  std::mt19937_64 rng(901);
  Tensor x = on_gpu(randn({64}, rng));
  Tensor out = Tensor::full({64}, 3.0, DType::F32, Device::CUDA);
  StepGraph g(Device::CUDA);
  CHECK_FALSE(g.capture([&] {
    out.copy_(ops::relu(x));
    (void)out.to_vector();  // waits for the device: not capturable
  }));
  CHECK_FALSE(g.captured());
  CHECK_MESSAGE(g.failure().find("captured step graph") != std::string::npos, g.failure());
  CHECK_THROWS_WITH_AS(g.replay(), doctest::Contains("nothing captured"), dsc::Error);
  CHECK(out.to_vector()[5] == 3.0);  // the recorded relu never ran
  CHECK_FALSE(g.capture([&] { out.copy_(x.to(Device::CPU).to(Device::CUDA)); }));
  CHECK(g.failure().find("copy") != std::string::npos);
  // A convolution shape seen for the first time needs cuDNN's algorithm search, which cannot be
  // captured: the message says to run the step once first.
  Tensor cx = on_gpu(randn({1, 3, 7, 9}, rng)), cw = on_gpu(randn({5, 3, 3, 3}, rng));
  CHECK_FALSE(g.capture([&] { (void)ops::conv2d(cx, cw, Tensor(), 1, 1); }));
  CHECK_MESSAGE(g.failure().find("run the step once without capturing first") != std::string::npos,
                g.failure());
  (void)ops::conv2d(cx, cw, Tensor(), 1, 1);  // eagerly: chooses and caches the algorithm
  CHECK(g.capture([&] { (void)ops::conv2d(cx, cw, Tensor(), 1, 1); }));
  // Afterwards the device works eagerly and a new capture succeeds.
  out.copy_(ops::relu(x));
  const std::vector<double> xv = x.to_vector(), ov = out.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) CHECK(ov[i] == std::max(0.0, xv[i]));
  CHECK(g.capture([&] { out.copy_(ops::mul(x, x)); }));
}

namespace {

// One mixed-precision training setup: the seed CNN (small), Adam with device-resident loss
// scaling, the trainer's own step (train/step.h), and the step's inputs and outputs in tensors
// that outlive any graph.
struct Trainer {
  std::shared_ptr<Sequential> model;
  std::unique_ptr<Adam> adam;
  LossScaler scaler{LossScalerOptions{.enabled = true}, Device::CUDA};
  std::unique_ptr<TrainStep> train_step;
  Tensor images, labels, loss_out;

  Trainer(ModelKind kind, int n) {
    SeedCnnOptions opt;
    opt.channels = 8;
    opt.image = 16;
    model = make_seed_cnn(kind, 4321, opt);
    model->to(Device::CUDA);
    model->train();
    adam = std::make_unique<Adam>(*model);
    train_step = std::make_unique<TrainStep>(*model, *adam, scaler, DType::F16);
    images = Tensor::empty({n, 3, 16, 16}, DType::F32, Device::CUDA);
    labels = Tensor::empty({n}, DType::I32, Device::CUDA);
    loss_out = Tensor::zeros({1}, DType::F32, Device::CUDA);
  }
  void load(const Tensor& x, const Tensor& y) {
    images.copy_(x.to(Device::CUDA));
    labels.copy_(y.to(Device::CUDA));
  }
  void step() { loss_out.copy_((*train_step)(images, labels).loss); }
};

std::vector<double> state_of(Trainer& t) {
  std::vector<double> s = t.adam->parameters().values().to_vector();
  for (const NamedTensor& b : t.model->buffers()) {
    const std::vector<double> v = b.tensor.to_vector();
    s.insert(s.end(), v.begin(), v.end());
  }
  s.push_back(t.scaler.scale());
  s.push_back(double(t.adam->steps()));
  return s;
}

}  // namespace

TEST_CASE("cuda step graph: replayed training steps equal eager steps bit for bit" *
          doctest::skip(no_graphs())) {
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    CAPTURE(model_kind_name(kind));
    const int n = 4, steps = 5;
    std::mt19937_64 rng(902);
    std::vector<Tensor> xs, ys;
    std::uniform_int_distribution<int> cls(0, 9);
    for (int i = 0; i < steps; ++i) {
      xs.push_back(Tensor::uniform({n, 3, 16, 16}, rng, -1.0, 1.0));
      std::vector<double> l(n);
      for (double& v : l) v = cls(rng);
      ys.push_back(Tensor::from(l, {n}, DType::I32));
    }
    Trainer eager(kind, n), graphed(kind, n);
    REQUIRE(state_of(eager) == state_of(graphed));
    std::vector<double> eager_losses, graph_losses;
    for (int i = 0; i < steps; ++i) {
      eager.load(xs[i], ys[i]);
      eager.step();
      eager_losses.push_back(eager.loss_out.item());
    }
    StepGraph g(Device::CUDA);
    for (int i = 0; i < steps; ++i) {
      graphed.load(xs[i], ys[i]);
      if (i == 0) {
        graphed.step();  // the first step runs eagerly (cuDNN algorithms, cached blocks)
      } else {
        if (i == 1) REQUIRE_MESSAGE(g.capture([&] { graphed.step(); }), g.failure());
        g.replay();
      }
      graph_losses.push_back(graphed.loss_out.item());
    }
    CHECK(graph_losses == eager_losses);
    const std::vector<double> a = state_of(eager), b = state_of(graphed);
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
    // Early steps overflow in f16 at the initial scale of 2^16 and are skipped, on the device.
    CHECK(graphed.adam->steps() + graphed.scaler.skipped() == steps);
    CHECK(graphed.adam->steps() >= 1);
  }
}
