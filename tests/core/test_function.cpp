// Out-of-tree ops through the extension API (core/function.h): an op with its own CPU kernel
// (f32, f64, f16 storage) and backward, checked against finite differences in f64 and against the
// same math composed of built-in ops; non-tensor arguments, optional (undefined) inputs,
// needs_input_grad, saved tensors, no graph under NoGradGuard, an op that returns its input, the
// mixed-precision view of f32 parameters, and the errors for a malformed backward or forward.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/function.h"
#include "core/half.h"
#include "core/mixed_precision.h"

namespace dsc {
namespace {

// y = x > 0 ? x : slope * x, with a loop over host memory per dtype.
template <class T, class Load, class Store>
void leaky_loop(const T* x, const T* g, T* out, int64_t n, float slope, Load load, Store store) {
  for (int64_t i = 0; i < n; ++i) {
    const double xi = load(x[i]);
    const double gi = g ? load(g[i]) : xi;
    out[i] = store(xi > 0 ? gi : slope * gi);
  }
}

// out = (x > 0 ? g : slope * g), g = x for the forward. CPU only.
void leaky_cpu(const Tensor& x, const Tensor* g, Tensor& out, float slope) {
  const int64_t n = x.numel();
  switch (x.dtype()) {
    case DType::F32:
      leaky_loop(
          x.data<float>(), g ? g->data<float>() : nullptr, out.data<float>(), n, slope,
          [](float v) { return double(v); }, [](double v) { return float(v); });
      break;
    case DType::F64:
      leaky_loop(
          x.data<double>(), g ? g->data<double>() : nullptr, out.data<double>(), n, slope,
          [](double v) { return v; }, [](double v) { return v; });
      break;
    case DType::F16:
      leaky_loop(
          x.data<uint16_t>(), g ? g->data<uint16_t>() : nullptr, out.data<uint16_t>(), n, slope,
          [](uint16_t v) { return double(half_to_float(v)); },
          [](double v) { return float_to_half(float(v)); });
      break;
    default:
      throw Error("leaky_relu: unsupported dtype " + std::string(dtype_name(x.dtype())));
  }
}

struct LeakyRelu : Function {
  static constexpr const char* name = "leaky_relu";
  float slope = 0;
  Tensor forward(const Tensor& x, float s) {
    slope = s;
    save_for_backward({x});
    Tensor y = empty_like(x);
    leaky_cpu(x, nullptr, y, slope);
    return y;
  }
  std::vector<Tensor> backward(const Tensor& dy) {
    Tensor dx = empty_like(dy);
    leaky_cpu(saved(0), &dy, dx, slope);
    return {dx};
  }
};

// y = alpha * x * w + b (b optional), composed of built-in ops; counts its backward calls and
// records what needs_input_grad said.
int g_affine_backwards = 0;
std::vector<bool> g_needs;
struct ScaledAffine : Function {
  static constexpr const char* name = "scaled_affine";
  double alpha = 1;
  bool has_bias = false;
  Tensor forward(const Tensor& x, double a, const Tensor& w, const Tensor& b) {
    alpha = a;
    has_bias = b.defined();
    save_for_backward({x, w});
    Tensor y = ops::scale(ops::mul(x, w), alpha);
    CHECK(y.grad_fn() == nullptr);  // forward runs without recording
    return has_bias ? ops::add(y, b) : y;
  }
  std::vector<Tensor> backward(const Tensor& dy) {
    ++g_affine_backwards;
    g_needs = {needs_input_grad(0), needs_input_grad(1), needs_input_grad(2)};
    const Tensor d = ops::scale(dy, alpha);
    return {needs_input_grad(0) ? ops::mul(d, saved(1)) : Tensor(),
            needs_input_grad(1) ? ops::mul(d, saved(0)) : Tensor(),
            has_bias && needs_input_grad(2) ? dy : Tensor()};
  }
};

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

TEST_CASE("function: an op with its own CPU kernel and backward matches finite differences") {
  std::mt19937_64 rng(1);
  const Tensor x = leaf(test::away_from_zero({3, 4, 5}, rng, 0.05, 2.0));
  const Tensor r = Tensor::randn({3, 4, 5}, rng, 1.0, DType::F64);
  test::check_gradients("leaky_relu",
                        [&] { return test::weighted_sum(apply<LeakyRelu>(x, 0.1f), r); }, {x});
  // The forward, and the node in the graph under the op's name.
  const Tensor y = apply<LeakyRelu>(x, 0.1f);
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "leaky_relu");
  const auto xv = x.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) CHECK(yv[i] == (xv[i] > 0 ? xv[i] : 0.1f * xv[i]));
  // f32 and f16 storage run the same kernel; f16 rounds once.
  for (DType t : {DType::F32, DType::F16}) {
    INFO(dtype_name(t));
    const Tensor y2 = apply<LeakyRelu>(x.detach().to(t), 0.1f);
    CHECK(y2.dtype() == t);
    CHECK(y2.grad_fn() == nullptr);  // the input needs no gradient
    test::check_close(y2, yv, 0, t == DType::F16 ? 1e-3 : 1e-6, "leaky_relu forward");
  }
}

TEST_CASE("function: tensor and other arguments, optional inputs, needs_input_grad") {
  std::mt19937_64 rng(2);
  const Tensor x = leaf(Tensor::uniform({2, 3}, rng, -1, 1, DType::F64));
  const Tensor w = leaf(Tensor::uniform({2, 3}, rng, -1, 1, DType::F64));
  const Tensor b = leaf(Tensor::uniform({2, 3}, rng, -1, 1, DType::F64));
  const Tensor r = Tensor::randn({2, 3}, rng, 1.0, DType::F64);
  test::check_gradients("scaled_affine",
                        [&] { return test::weighted_sum(apply<ScaledAffine>(x, 2.5, w, b), r); },
                        {x, w, b});
  test::check_gradients(
      "scaled_affine without bias",
      [&] { return test::weighted_sum(apply<ScaledAffine>(x, -0.5, w, Tensor()), r); }, {x, w});
  // The same values as the built-in ops compose them.
  const Tensor ref = ops::add(ops::scale(ops::mul(x, w), 2.5), b);
  CHECK(apply<ScaledAffine>(x, 2.5, w, b).to_vector() == ref.to_vector());
  // needs_input_grad: false for a constant and for an absent input.
  g_needs.clear();
  const Tensor wl = leaf(w.detach().clone());
  test::weighted_sum(apply<ScaledAffine>(x.detach(), 1.0, wl, Tensor()), r).backward();
  CHECK(g_needs == std::vector<bool>{false, true, false});
  CHECK(wl.grad().defined());
  // No graph under NoGradGuard, and backward never runs.
  g_affine_backwards = 0;
  {
    NoGradGuard no_grad;
    CHECK(apply<ScaledAffine>(x, 1.0, w, b).grad_fn() == nullptr);
  }
  CHECK(g_affine_backwards == 0);
}

// Returns its input unchanged: the output must still get its own node.
struct Identity : Function {
  static constexpr const char* name = "identity";
  Tensor forward(const Tensor& x) { return x; }
  std::vector<Tensor> backward(const Tensor& dy) { return {dy}; }
};

TEST_CASE("function: an op that returns its input does not rewire the input") {
  std::mt19937_64 rng(3);
  const Tensor x = leaf(Tensor::uniform({4}, rng, -1, 1, DType::F64));
  const Tensor h = ops::scale(x, 3.0);
  const Tensor y = apply<Identity>(h);
  CHECK(std::string(h.grad_fn()->name()) == "scale");
  CHECK(std::string(y.grad_fn()->name()) == "identity");
  ops::sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<double>(4, 3.0));
}

// w is a parameter: under mixed precision forward must see it in f16.
DType g_seen_w = DType::U8;
struct MulParam : Function {
  static constexpr const char* name = "mul_param";
  Tensor forward(const Tensor& x, const Tensor& w) {
    g_seen_w = w.dtype();
    save_for_backward({x, w});
    return ops::mul(x, w);
  }
  std::vector<Tensor> backward(const Tensor& dy) {
    return {ops::mul(dy, saved(1)), ops::mul(dy, saved(0))};
  }
};

TEST_CASE("function: f32 parameters reach an f16 op as their f16 view, gradients in f32") {
  std::mt19937_64 rng(4);
  const Tensor x = Tensor::uniform({3, 4}, rng, -1, 1).to(DType::F16);
  const Tensor w = leaf(Tensor::uniform({3, 4}, rng, -1, 1));
  const Tensor y = apply<MulParam>(x, w);
  CHECK(g_seen_w == DType::F16);
  CHECK(y.dtype() == DType::F16);
  ops::sum(y).backward();
  REQUIRE(w.grad().defined());
  CHECK(w.grad().dtype() == DType::F32);
  CHECK(w.grad().to_vector() == x.to_vector());  // d(sum x * w)/dw = x, exact in f16 and f32
  // The same bits as through compute_view, which the op no longer needs.
  CHECK(test::same_bytes(y, ops::mul(x, compute_view(w, x))));
  // An f32 tensor that is not a parameter (no gradient: a buffer, say) is passed as it is.
  apply<MulParam>(x, w.detach());
  CHECK(g_seen_w == DType::F32);
}

struct TwoGradsForOne : Function {
  static constexpr const char* name = "two_grads";
  Tensor forward(const Tensor& x) { return ops::scale(x, 2.0); }
  std::vector<Tensor> backward(const Tensor& dy) { return {dy, dy}; }
};
struct WrongShape : Function {
  static constexpr const char* name = "wrong_shape";
  Tensor forward(const Tensor& x) { return ops::scale(x, 2.0); }
  std::vector<Tensor> backward(const Tensor&) { return {Tensor::zeros({7}, DType::F64)}; }
};
struct NoOutput : Function {
  static constexpr const char* name = "no_output";
  Tensor forward(const Tensor&) { return Tensor(); }
  std::vector<Tensor> backward(const Tensor&) { return {Tensor()}; }
};

TEST_CASE("function: a malformed forward or backward is an error naming the op") {
  const Tensor x = leaf(Tensor::full({2, 2}, 1.0, DType::F64));
  test::check_throws_with([&] { ops::sum(apply<TwoGradsForOne>(x)).backward(); },
                          {"two_grads", "2 gradients for 1 tensor inputs"}, "gradient count");
  test::check_throws_with([&] { ops::sum(apply<WrongShape>(x)).backward(); },
                          {"wrong_shape", "f64[7] cpu", "input 0 f64[2, 2] cpu"}, "gradient shape");
  test::check_throws_with([&] { apply<NoOutput>(x); }, {"no_output", "undefined"}, "no output");
  LeakyRelu probe;
  test::check_throws_with([&] { probe.saved(0); }, {"saved(0)", "0 tensors"}, "nothing saved");
  test::check_throws_with([&] { probe.needs_input_grad(1); }, {"needs_input_grad(1)"},
                          "needs_input_grad out of range");
}

}  // namespace
}  // namespace dsc
