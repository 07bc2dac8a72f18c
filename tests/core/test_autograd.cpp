// Autograd (core/autograd.h): gradients accumulate into leaves, a tensor used twice receives the
// sum of both paths, diamonds, zero_grad, NoGradGuard, errors, += across backward calls, long
// chains, the Node contract for user-written nodes, the profiling hooks (ProfileScope,
// BackwardObserver) and the gradient hook (GradientHook). Expected gradients are derived by hand.
// Also the two CPU table entries that accumulation and sum()'s backward rest on: axpy of f16 into
// f32 and broadcast.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/backend.h"

namespace dsc {
namespace {

Tensor leaf(const std::vector<double>& v, DType t = DType::F64) {
  Tensor x = Tensor::from(v, {int64_t(v.size())}, t);
  x.set_requires_grad(true);
  return x;
}

TEST_CASE("autograd: backward from a scalar fills the leaves' gradients") {
  Tensor x = leaf({1.5, -2.0, 0.25});
  Tensor c = Tensor::from({3.0, -1.0, 4.0}, {3}, DType::F64);  // no grad
  Tensor loss = ops::sum(ops::mul(x, c));                   // dloss/dx = c
  CHECK(loss.grad_fn() != nullptr);
  CHECK(std::string(loss.grad_fn()->name()) == "sum");
  CHECK(loss.item() == 1.5 * 3 + 2 + 1.0);
  loss.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::F64);
  CHECK(x.grad().to_vector() == std::vector<double>{3.0, -1.0, 4.0});
  CHECK_FALSE(c.grad().defined());  // inputs that do not require grad get none

  // Two leaves of one op each get their own gradient: d(sum(a*b))/da = b, /db = a.
  Tensor a = leaf({2, 3}), b = leaf({-5, 7});
  ops::sum(ops::mul(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{-5, 7});
  CHECK(b.grad().to_vector() == std::vector<double>{2, 3});

  // A leaf scalar is its own root: gradient 1.
  Tensor s = leaf({4.0});
  s.backward();
  CHECK(s.grad().item() == 1.0);
}

TEST_CASE("autograd: a tensor used twice gets the sum of both paths") {
  // loss = sum(x * x): d/dx = 2x (both inputs of one mul are x).
  Tensor x = leaf({1.0, -3.0, 0.5});
  ops::sum(ops::mul(x, x)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, -6.0, 1.0});

  // loss = sum(relu(x) * (3 x)) = 3 x^2 for x > 0, 0 otherwise: d/dx = 6x or 0, through two
  // different paths (relu, scale) that meet in mul.
  Tensor y = leaf({2.0, -1.0, 0.5});
  ops::sum(ops::mul(ops::relu(y), ops::scale(y, 3.0))).backward();
  CHECK(y.grad().to_vector() == std::vector<double>{12.0, 0.0, 3.0});

  // x enters the loss twice through one intermediate: loss = sum(h * h), h = 2x -> 8x.
  Tensor z = leaf({1.0, -2.0});
  Tensor h = ops::scale(z, 2.0);
  ops::sum(ops::mul(h, h)).backward();
  CHECK(z.grad().to_vector() == std::vector<double>{8.0, -16.0});
}

TEST_CASE("autograd: diamond graph") {
  // a = 2x; b = 3a; c = a * a; d = b * c = 3 a^3 = 24 x^3; loss = sum(d * r).
  // dloss/dx = 72 x^2 r. a has two consumers (b and c), c uses a twice.
  Tensor x = leaf({1.0, -0.5, 2.0});
  Tensor r = Tensor::from({1.0, 2.0, -0.25}, {3}, DType::F64);
  Tensor a = ops::scale(x, 2.0);
  Tensor b = ops::scale(a, 3.0);
  Tensor c = ops::mul(a, a);
  Tensor d = ops::mul(b, c);
  ops::sum(ops::mul(d, r)).backward();
  const std::vector<double> g = x.grad().to_vector();
  const std::vector<double> want = {72.0 * 1 * 1, 72.0 * 0.25 * 2, 72.0 * 4 * -0.25};
  test::check_close(g, want, 0, 1e-14, "diamond gradient");
  // Intermediate tensors keep no gradient (only leaves accumulate).
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("autograd: gradients accumulate (+=) across backward calls, zero_grad clears") {
  Tensor x = leaf({1.0, 2.0, -1.0});
  Tensor w = Tensor::from({0.5, -1.5, 2.0}, {3}, DType::F64);
  auto loss = [&] { return ops::sum(ops::mul(ops::mul(x, x), w)); };  // d/dx = 2 x w
  loss().backward();
  const std::vector<double> g1 = x.grad().to_vector();
  CHECK(g1 == std::vector<double>{1.0, -6.0, -4.0});
  const void* storage = x.grad().raw();
  loss().backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, -12.0, -8.0});
  CHECK(x.grad().raw() == storage);  // accumulated in place
  x.zero_grad();
  CHECK(x.grad().defined());
  CHECK(x.grad().raw() == storage);  // zero_grad keeps the storage
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 0.0, 0.0});
  loss().backward();
  CHECK(x.grad().to_vector() == g1);

  // A gradient preset to a view (as ParameterBuffer does) is accumulated into, not replaced.
  Tensor buffer = Tensor::full({5}, 10.0, DType::F64);
  Tensor y = leaf({3.0, 4.0});
  y.set_grad(buffer.slice0(1, 3));
  ops::sum(ops::scale(y, -2.0)).backward();
  CHECK(buffer.to_vector() == std::vector<double>{10.0, 8.0, 8.0, 10.0, 10.0});
  test::check_throws_with([&] { y.set_grad(Tensor::zeros({3}, DType::F64)); },
                          {"set_grad", "[3]", "[2]"}, "set_grad shape mismatch");
}

TEST_CASE("autograd: NoGradGuard records no graph") {
  Tensor x = leaf({1.0, 2.0});
  CHECK(grad_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    Tensor y = ops::mul(x, x);
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(y.requires_grad());
    Tensor s = ops::sum(y);
    test::check_throws_with([&] { s.backward(); }, {"does not require grad"},
                            "backward without graph");
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores the outer state
  }
  CHECK(grad_enabled());
  CHECK(ops::mul(x, x).grad_fn() != nullptr);
  CHECK_FALSE(x.grad().defined());

  // Inputs that need no gradient record nothing either.
  Tensor c = Tensor::from({1.0, 2.0}, {2}, DType::F64);
  CHECK(ops::relu(c).grad_fn() == nullptr);
  CHECK_FALSE(needs_grad({&c}));
  CHECK(needs_grad({&c, &x}));
}

TEST_CASE("autograd: nodes carry their ProfileScope; a BackwardObserver sees them in backward order") {
  struct Seen : BackwardObserver {
    std::vector<int> scopes;
    void before_node(int scope) override { scopes.push_back(scope); }
  } seen;
  Tensor x = leaf({1, 2, 3});
  Tensor y, z;
  {
    ProfileScope first(7);
    y = ops::mul(x, x);
    {
      ProfileScope second(8);
      z = ops::sum(y);
    }
    CHECK(y.grad_fn()->scope == 7);  // the inner scope has ended: 7 again
    CHECK(ops::mul(y, y).grad_fn()->scope == 7);
  }
  CHECK(z.grad_fn()->scope == 8);
  CHECK(ops::mul(x, x).grad_fn()->scope == -1);  // outside every scope
  CHECK(set_backward_observer(&seen) == nullptr);
  z.backward();
  CHECK(set_backward_observer(nullptr) == &seen);
  CHECK(seen.scopes == std::vector<int>{8, 7});  // sum's rule first, then mul's
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});  // unchanged by observing
  ops::sum(ops::mul(x, x)).backward();  // no observer: nothing more is seen
  CHECK(seen.scopes.size() == 2);
}

// A node whose rule sends its input no gradient (as a user-written op may do for an input it does
// not differentiate): the nodes below it are skipped.
struct StopNode : Node {
  std::vector<Tensor> backward(const Tensor&) override { return {Tensor()}; }
  const char* name() const override { return "stop"; }
};

TEST_CASE("autograd: a GradientHook hears each leaf once, when its gradient is final") {
  struct Heard : GradientHook {
    std::vector<std::pair<const TensorImpl*, std::vector<double>>> leaves;
    std::vector<std::string> events;
    std::vector<std::pair<const TensorImpl*, std::string>> names;
    void leaf_ready(const Tensor& t) override {
      leaves.push_back({t.id(), t.grad().defined() ? t.grad().to_vector() : std::vector<double>{}});
      for (const auto& [id, name] : names)
        if (id == t.id()) events.push_back(name);
    }
    void after_node() override { events.push_back("|"); }
  } heard;
  Tensor x = leaf({1, 2}), w1 = leaf({3, -1}), w2 = leaf({0.5, 2}), c = leaf({4, 5});
  heard.names = {{x.id(), "x"}, {w1.id(), "w1"}, {w2.id(), "w2"}, {c.id(), "c"}};
  // z = sum(x w1 w2 + w2) + sum(stop(c c)): w2 is an input of two nodes; c's node is never given
  // a gradient (the stop node sends none).
  Tensor k = ops::add(ops::mul(ops::mul(x, w1), w2), w2);
  Tensor cc = ops::mul(c, c);
  Tensor s = Tensor::zeros({2}, DType::F64);
  auto stop = std::make_shared<StopNode>();
  stop->inputs = {cc};
  record(s, stop);
  Tensor z = ops::add(ops::sum(k), ops::sum(s));
  {
    GradientHookScope scope(&heard);
    z.backward();
  }
  // Every leaf once; x and w1 (the innermost mul) after w2 (both of its nodes ran first).
  REQUIRE(heard.leaves.size() == 4);
  std::vector<std::string> order;
  for (const std::string& e : heard.events)
    if (e != "|") order.push_back(e);
  CHECK(order.size() == 4);
  const auto at = [&](const std::string& n) {
    return std::find(order.begin(), order.end(), n) - order.begin();
  };
  CHECK(at("w2") < at("x"));
  CHECK(at("x") + 1 == at("w1"));  // the same node's inputs, in input order
  // One after_node per node of the pass: add, sum, sum, stop, mul(c c), add, mul, mul.
  CHECK(std::count(heard.events.begin(), heard.events.end(), "|") == 8);
  // Each leaf's gradient was final when it was heard: what it holds after the pass.
  for (const auto& [id, g] : heard.leaves) {
    const Tensor* t = id == x.id() ? &x : id == w1.id() ? &w1 : id == w2.id() ? &w2 : &c;
    if (t == &c) {
      CHECK(g.empty());  // no gradient reached c
      CHECK_FALSE(c.grad().defined());
    } else {
      CHECK(g == t->grad().to_vector());
    }
  }
  CHECK(w2.grad().to_vector() == std::vector<double>{1 * 3 + 1, 2 * -1 + 1});
  // The scope ended: a second pass is not heard.
  const size_t n = heard.events.size();
  ops::sum(ops::mul(x, x)).backward();
  CHECK(heard.events.size() == n);
}

TEST_CASE("autograd: backward needs a scalar") {
  Tensor x = leaf({1.0, 2.0});
  Tensor y = ops::scale(x, 2.0);
  test::check_throws_with([&] { y.backward(); }, {"backward", "scalar", "[2]"},
                          "backward on a vector");
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: gradients cross dtype casts and reshapes") {
  // x (f32) -> f64 -> reshape [2, 2] -> * r -> sum: dx = r as f32, shape of x.
  Tensor x = leaf({1.0, 2.0, 3.0, 4.0}, DType::F32);
  Tensor r = Tensor::from({0.5, -1.0, 2.0, 0.25}, {2, 2}, DType::F64);
  Tensor y = ops::reshape(ops::cast(x, DType::F64), {2, 2});
  CHECK(y.dtype() == DType::F64);
  ops::sum(ops::mul(y, r)).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::F32);
  CHECK(x.grad().shape() == Shape{4});
  CHECK(x.grad().to_vector() == std::vector<double>{0.5, -1.0, 2.0, 0.25});
  // cast to the same dtype is the identity (no node).
  Tensor same = ops::cast(x, DType::F32);
  CHECK(same.id() == x.id());
}

TEST_CASE("autograd: an f16 gradient reaches an f32 leaf in f32, first and accumulated") {
  // x (f32) -> f16 -> * r (f16) -> sum: dx = r, widened; the second backward adds (axpy of the
  // f16 gradient into the f32 one), the path mixed precision's master weights take. r's values
  // are not exact in f16, so the expected gradient is r rounded to f16.
  Tensor x = leaf({1.0, -2.0, 3.0, 0.5}, DType::F32);
  Tensor r = Tensor::from({0.1, -1.7, 2.3, 0.3}, {4}, DType::F16);
  const std::vector<double> r16 = r.to_vector();  // r as stored
  for (int pass = 1; pass <= 2; ++pass) {
    ops::sum(ops::mul(ops::cast(x, DType::F16), r)).backward();
    REQUIRE(x.grad().defined());
    CHECK(x.grad().dtype() == DType::F32);
    const std::vector<double> g = x.grad().to_vector();
    for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(pass * r16[i]).epsilon(1e-6));
  }
}

TEST_CASE("axpy adds f16 into f32 exactly as a cast then an f32 axpy; other mixes are errors") {
  std::mt19937_64 rng(77);
  Tensor x = Tensor::randn({1000}, rng, 1.0, DType::F16), y = Tensor::randn({1000}, rng);
  Tensor direct = y.clone(), via_cast = y.clone();
  const KernelTable& k = kernels(Device::CPU);
  k.axpy(x, -0.75, direct);
  k.axpy(x.to(DType::F32), -0.75, via_cast);
  CHECK(direct.to_vector() == via_cast.to_vector());
  Tensor y16 = y.to(DType::F16);
  CHECK_THROWS_WITH_AS(k.axpy(y, 1.0, y16), doctest::Contains("f16 into f32"), dsc::Error);
}

TEST_CASE("broadcast fills from a one-element tensor of the same dtype, else refuses") {
  const KernelTable& k = kernels(Device::CPU);
  for (DType t : {DType::F32, DType::F16, DType::F64}) {
    Tensor v = Tensor::from({-1.375}, {1}, t), out = Tensor::full({3, 5}, 9.0, t);
    k.broadcast(v, out);
    CHECK(out.to_vector() == std::vector<double>(15, -1.375));
  }
  Tensor out = Tensor::zeros({4}, DType::F32);
  CHECK_THROWS_WITH_AS(k.broadcast(Tensor::zeros({2}, DType::F32), out),
                       doctest::Contains("one element"), dsc::Error);
  CHECK_THROWS_WITH_AS(k.broadcast(Tensor::zeros({1}, DType::F64), out),
                       doctest::Contains("one element"), dsc::Error);
}

TEST_CASE("autograd: a long chain does not overflow the stack") {
  Tensor x = leaf({1.0});
  Tensor h = x;
  const int depth = 20000;
  for (int i = 0; i < depth; ++i) h = ops::scale(h, 1.0001);
  h.backward();
  CHECK(x.grad().item() == doctest::Approx(std::pow(1.0001, depth)).epsilon(1e-12));
}

// ops::add hands the SAME gradient tensor to both of its inputs (its rule is a pass-through).
// The accumulators of the two inputs must not end up sharing it.
TEST_CASE("autograd: a gradient handed to two inputs (add) is not aliased") {
  // One pass: loss = sum(2a * (a + b)) = 2 sum(a^2 + a b): dloss/da = 4a + 2b, dloss/db = 2a.
  // The add node runs before the scale node here (reverse topological order), so if a.grad and
  // b.grad were one tensor, the scale node's contribution to a.grad would land in b.grad too.
  Tensor a = leaf({1.0, -2.0, 0.5}), b = leaf({3.0, 0.25, -1.0});
  ops::sum(ops::mul(ops::scale(a, 2.0), ops::add(a, b))).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{4 + 6, -8 + 0.5, 2 - 2});
  CHECK(b.grad().to_vector() == std::vector<double>{2.0, -4.0, 1.0});

  // Across passes: loss = sum(r * (c + d)): dc = dd = r; a second pass must add r to each once.
  Tensor c = leaf({1.0, 2.0}), d = leaf({3.0, 4.0});
  Tensor r = Tensor::from({0.5, -2.0}, {2}, DType::F64);
  ops::sum(ops::mul(ops::add(c, d), r)).backward();
  CHECK(c.grad().to_vector() == std::vector<double>{0.5, -2.0});
  CHECK(d.grad().to_vector() == std::vector<double>{0.5, -2.0});
  ops::sum(ops::mul(ops::add(c, d), r)).backward();
  CHECK(c.grad().to_vector() == std::vector<double>{1.0, -4.0});
  CHECK(d.grad().to_vector() == std::vector<double>{1.0, -4.0});

  // Intermediate nodes: u = 2x, v = 3x, w = u + v = 5x, loss = sum(w * w * r): 50 x r.
  Tensor x = leaf({1.0, -1.0});
  Tensor w = ops::add(ops::scale(x, 2.0), ops::scale(x, 3.0));
  ops::sum(ops::mul(ops::mul(w, w), r)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{25.0, 100.0});
  // add(x, x): 2 r.
  Tensor y = leaf({1.0, 1.0});
  ops::sum(ops::mul(ops::add(y, y), r)).backward();
  CHECK(y.grad().to_vector() == std::vector<double>{1.0, -4.0});
}

}  // namespace
}  // namespace dsc
