// Differentiable ops (see ops.h): shape checks, output allocation, kernel calls through the
// device's table, and one Node per op holding what its backward rule needs. Tested against naive
// references and f64 finite differences in tests/core/.
#include "core/ops.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/mixed_precision.h"

namespace dsc::ops {
namespace {

bool wants_grad(const Tensor& t) { return t.defined() && (t.requires_grad() || t.grad_fn()); }

// An uninitialised tensor with t's shape, dtype and device (kernels overwrite their outputs).
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// t in like's dtype: an incoming gradient converted to the dtype its op computes in.
Tensor in_dtype_of(const Tensor& t, const Tensor& like) {
  return t.dtype() == like.dtype() ? t : t.to(like.dtype());
}

void same_device(const char* op, const Tensor& a, const Tensor& b) {
  DSC_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.str(), " and ",
            b.str());
}

void same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  DSC_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a.str(), " and ", b.str(),
            " (the dtypes must match, except f32 parameters with an f16 input)");
}

// Mixed precision: of an f16 and an f32 operand, the f32 one is used in f16 (compute_view).
void to_common_compute_dtype(Tensor& a, Tensor& b) {
  if (is_mixed_precision_pair(a, b)) {
    b = compute_view(b, a);
  } else if (is_mixed_precision_pair(b, a)) {
    a = compute_view(a, b);
  }
}

// ---- conv2d -------------------------------------------------------------------------------------

struct Conv2dNode : Node {
  ConvShape s;
  const char* name() const override { return s.depthwise() ? "depthwise_conv2d" : "conv2d"; }
  std::vector<Tensor> backward(const Tensor& dy_in) override {
    const Tensor& x = inputs[0];
    const Tensor& w = inputs[1];
    const Tensor& b = inputs[2];
    const KernelTable& k = kernels(x.device());
    Tensor dy = in_dtype_of(dy_in, x);
    Tensor dx, dw, db;
    if (wants_grad(x)) dx = empty_like(x);
    if (wants_grad(w) || wants_grad(b)) {
      dw = empty_like(w);
      if (b.defined()) db = empty_like(b);
      if (k.conv2d_backward) {  // both at once
        k.conv2d_backward(s, x, dy, w, dx.defined() ? &dx : nullptr, dw,
                          b.defined() ? &db : nullptr);
      } else {
        if (dx.defined()) k.conv2d_backward_data(s, dy, w, dx);
        k.conv2d_backward_filter(s, x, dy, dw, b.defined() ? &db : nullptr);
      }
    } else if (dx.defined()) {
      k.conv2d_backward_data(s, dy, w, dx);
    }
    return {dx, wants_grad(w) ? dw : Tensor(), wants_grad(b) ? db : Tensor()};
  }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w_param, const Tensor& b_param, int stride, int pad,
              int groups) {
  const Tensor w = param_for_input(w_param, x);
  const Tensor b = param_for_input(b_param, x);
  DSC_CHECK(x.ndim() == 4 && w.ndim() == 4, "conv2d: expected input [N, C, H, W] and weight [K, C, R, S], got ",
            shape_str(x.shape()), " and ", shape_str(w.shape()));
  same_device("conv2d", x, w);
  same_dtype("conv2d", x, w);
  DSC_CHECK(stride >= 1 && pad >= 0, "conv2d: stride ", stride, " and padding ", pad,
            " (expected stride >= 1, padding >= 0)");
  ConvShape s;
  s.n = int(x.dim(0));
  s.c = int(x.dim(1));
  s.h = int(x.dim(2));
  s.w = int(x.dim(3));
  s.k = int(w.dim(0));
  s.r = int(w.dim(2));
  s.s = int(w.dim(3));
  s.stride = stride;
  s.pad = pad;
  s.groups = groups;
  DSC_CHECK(groups == 1 || (groups == s.c && s.k == s.c), "conv2d: groups = ", groups,
            " unsupported (1, or depthwise with groups = C = K) for input ", shape_str(x.shape()),
            " and weight ", shape_str(w.shape()));
  DSC_CHECK(w.dim(1) == s.c / groups, "conv2d: input ", shape_str(x.shape()), " has ", s.c,
            " channels but weight ", shape_str(w.shape()), " expects ", w.dim(1) * groups);
  DSC_CHECK(s.h + 2 * pad >= s.r && s.w + 2 * pad >= s.s, "conv2d: kernel ", s.r, "x", s.s,
            " larger than the padded input ", shape_str(x.shape()), " with padding ", pad);
  if (b.defined()) {
    DSC_CHECK(b.ndim() == 1 && b.dim(0) == s.k, "conv2d: bias ", shape_str(b.shape()),
              " for weight ", shape_str(w.shape()), " (expected [", s.k, "])");
    same_dtype("conv2d", x, b);
  }
  Tensor y = Tensor::empty({s.n, s.k, s.p(), s.q()}, x.dtype(), x.device());
  kernels(x.device()).conv2d_forward(s, x, w, b.defined() ? &b : nullptr, y);
  if (needs_grad({&x, &w, &b})) {
    auto node = std::make_shared<Conv2dNode>();
    node->s = s;
    node->inputs = {x, w, b};
    record(y, node);
  }
  return y;
}

// ---- depthwise-separable conv2d ------------------------------------------------------------------

namespace {
struct DepSepNode : Node {
  DepSepShape s;
  Tensor y;          // detached output, for the ReLU mask (undefined when relu_mask holds it)
  Tensor relu_mask;  // the ReLU mask as bits, on backends that keep it (depsep_relu_bits)
  const char* name() const override { return "depsep_conv2d"; }
  std::vector<Tensor> backward(const Tensor& dy_in) override {
    const Tensor& x = inputs[0];
    const Tensor& wd = inputs[1];
    const Tensor& wp = inputs[2];
    const Tensor& b = inputs[3];
    Tensor dy = in_dtype_of(dy_in, x);
    Tensor dx = wants_grad(x) ? empty_like(x) : Tensor();
    Tensor dwd = empty_like(wd);
    Tensor dwp = empty_like(wp);
    Tensor db = b.defined() ? empty_like(b) : Tensor();
    kernels(x.device())
        .depsep_conv2d_backward(s, x, wd, wp, y, relu_mask.defined() ? &relu_mask : nullptr, dy,
                                dx.defined() ? &dx : nullptr, dwd, dwp,
                                db.defined() ? &db : nullptr);
    return {dx, wants_grad(wd) ? dwd : Tensor(), wants_grad(wp) ? dwp : Tensor(),
            wants_grad(b) ? db : Tensor()};
  }
};
}  // namespace

Tensor depsep_conv2d(const Tensor& x, const Tensor& wd_param, const Tensor& wp_param,
                     const Tensor& b_param, int stride, int pad, bool relu) {
  const Tensor wd = param_for_input(wd_param, x);
  const Tensor wp = param_for_input(wp_param, x);
  const Tensor b = param_for_input(b_param, x);
  DSC_CHECK(x.ndim() == 4 && wd.ndim() == 4 && wp.ndim() == 4,
            "depsep_conv2d: expected input [N, C, H, W], depthwise weight [C, 1, R, S] and "
            "pointwise weight [K, C, 1, 1], got ",
            shape_str(x.shape()), ", ", shape_str(wd.shape()), " and ", shape_str(wp.shape()));
  DSC_CHECK(wd.dim(0) == x.dim(1) && wd.dim(1) == 1 && wp.dim(1) == x.dim(1) && wp.dim(2) == 1 &&
                wp.dim(3) == 1,
            "depsep_conv2d: input ", shape_str(x.shape()), " does not match depthwise weight ",
            shape_str(wd.shape()), " (expected [", x.dim(1), ", 1, R, S]) and pointwise weight ",
            shape_str(wp.shape()), " (expected [K, ", x.dim(1), ", 1, 1])");
  const KernelTable& k = kernels(x.device());
  if (!k.depsep_conv2d_forward || !k.depsep_conv2d_backward) {
    Tensor t = conv2d(x, wd, Tensor(), stride, pad, int(x.dim(1)));
    Tensor y = conv2d(t, wp, b, 1, 0);
    return relu ? ops::relu(y) : y;
  }
  same_device("depsep_conv2d", x, wd);
  same_device("depsep_conv2d", x, wp);
  same_dtype("depsep_conv2d", x, wd);
  same_dtype("depsep_conv2d", x, wp);
  DSC_CHECK(stride >= 1 && pad >= 0, "depsep_conv2d: stride ", stride, " and padding ", pad,
            " (expected stride >= 1, padding >= 0)");
  DepSepShape s;
  s.dw.n = int(x.dim(0));
  s.dw.c = s.dw.k = s.dw.groups = int(x.dim(1));
  s.dw.h = int(x.dim(2));
  s.dw.w = int(x.dim(3));
  s.dw.r = int(wd.dim(2));
  s.dw.s = int(wd.dim(3));
  s.dw.stride = stride;
  s.dw.pad = pad;
  s.k = int(wp.dim(0));
  s.relu = relu;
  DSC_CHECK(s.dw.h + 2 * pad >= s.dw.r && s.dw.w + 2 * pad >= s.dw.s, "depsep_conv2d: kernel ",
            s.dw.r, "x", s.dw.s, " larger than the padded input ", shape_str(x.shape()),
            " with padding ", pad);
  if (b.defined()) {
    DSC_CHECK(b.ndim() == 1 && b.dim(0) == s.k, "depsep_conv2d: bias ", shape_str(b.shape()),
              " for pointwise weight ", shape_str(wp.shape()), " (expected [", s.k, "])");
    same_device("depsep_conv2d", x, b);
    same_dtype("depsep_conv2d", x, b);
  }
  Tensor y = Tensor::empty({s.dw.n, s.k, s.p(), s.q()}, x.dtype(), x.device());
  const bool grad = needs_grad({&x, &wd, &wp, &b});
  Tensor mask;  // 1 bit per output instead of reading y again in the backward
  if (grad && relu && k.depsep_relu_bits)
    mask = Tensor::empty({s.dw.n, s.k, s.relu_mask_row_bytes()}, DType::U8, x.device());
  k.depsep_conv2d_forward(s, x, wd, wp, b.defined() ? &b : nullptr, y,
                          mask.defined() ? &mask : nullptr);
  if (grad) {
    auto node = std::make_shared<DepSepNode>();
    node->s = s;
    if (mask.defined())
      node->relu_mask = mask;
    else
      node->y = y.detach();
    node->inputs = {x, wd, wp, b};
    record(y, node);
  }
  return y;
}

// ---- linear -------------------------------------------------------------------------------------

namespace {
struct LinearNode : Node {
  const char* name() const override { return "linear"; }
  std::vector<Tensor> backward(const Tensor& dy_in) override {
    const Tensor& x = inputs[0];
    const Tensor& w = inputs[1];
    const Tensor& b = inputs[2];
    Tensor dy = in_dtype_of(dy_in, x);
    Tensor dx = wants_grad(x) ? empty_like(x) : Tensor();
    Tensor dw = empty_like(w);
    Tensor db = b.defined() ? empty_like(b) : Tensor();
    kernels(x.device()).linear_backward(x, w, dy, dx.defined() ? &dx : nullptr, dw,
                                        db.defined() ? &db : nullptr);
    return {dx, wants_grad(w) ? dw : Tensor(), wants_grad(b) ? db : Tensor()};
  }
};
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w_param, const Tensor& b_param) {
  const Tensor w = param_for_input(w_param, x);
  const Tensor b = param_for_input(b_param, x);
  DSC_CHECK(x.ndim() == 2 && w.ndim() == 2 && x.dim(1) == w.dim(1), "linear: input ",
            shape_str(x.shape()), " does not match weight ", shape_str(w.shape()),
            " (expected [N, I] and [O, I])");
  same_device("linear", x, w);
  same_dtype("linear", x, w);
  if (b.defined()) {
    DSC_CHECK(b.ndim() == 1 && b.dim(0) == w.dim(0), "linear: bias ", shape_str(b.shape()),
              " for weight ", shape_str(w.shape()));
    same_dtype("linear", x, b);
  }
  Tensor y = Tensor::empty({x.dim(0), w.dim(0)}, x.dtype(), x.device());
  kernels(x.device()).linear_forward(x, w, b.defined() ? &b : nullptr, y);
  if (needs_grad({&x, &w, &b})) {
    auto node = std::make_shared<LinearNode>();
    node->inputs = {x, w, b};
    record(y, node);
  }
  return y;
}

// ---- relu ---------------------------------------------------------------------------------------

namespace {
struct ReluNode : Node {
  Tensor y;  // detached output (holding the output itself would make a reference cycle)
  const char* name() const override { return "relu"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor dx = empty_like(y);
    kernels(y.device()).relu_backward(y, in_dtype_of(dy, y), dx);
    return {dx};
  }
};
}  // namespace

Tensor relu(const Tensor& x) {
  Tensor y = empty_like(x);
  kernels(x.device()).relu_forward(x, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<ReluNode>();
    node->inputs = {x};
    node->y = y.detach();
    record(y, node);
  }
  return y;
}

// ---- max pool -----------------------------------------------------------------------------------

namespace {
struct MaxPool2dNode : Node {
  Tensor y;
  int k = 2, st = 2;
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const Tensor& x = inputs[0];
    Tensor dx = empty_like(x);
    kernels(x.device()).max_pool2d_backward(x, y, in_dtype_of(dy, x), k, st, dx);
    return {dx};
  }
};
}  // namespace

Tensor max_pool2d(const Tensor& x, int k, int st) {
  DSC_CHECK(x.ndim() == 4, "max_pool2d: expected [N, C, H, W], got ", shape_str(x.shape()));
  DSC_CHECK(k >= 1 && st >= 1 && x.dim(2) >= k && x.dim(3) >= k, "max_pool2d: window ", k,
            " stride ", st, " does not fit input ", shape_str(x.shape()));
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), (x.dim(2) - k) / st + 1, (x.dim(3) - k) / st + 1},
                           x.dtype(), x.device());
  kernels(x.device()).max_pool2d_forward(x, k, st, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<MaxPool2dNode>();
    node->inputs = {x};
    node->y = y.detach();
    node->k = k;
    node->st = st;
    record(y, node);
  }
  return y;
}

// ---- global average pooling --------------------------------------------------------------------

namespace {
struct GlobalAvgPool2dNode : Node {
  const char* name() const override { return "global_avg_pool2d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const Tensor& x = inputs[0];
    Tensor dx = empty_like(x);
    kernels(x.device()).global_avg_pool2d_backward(in_dtype_of(dy, x), dx);
    return {dx};
  }
};
}  // namespace

Tensor global_avg_pool2d(const Tensor& x) {
  DSC_CHECK(x.ndim() == 4 && x.dim(2) >= 1 && x.dim(3) >= 1,
            "global_avg_pool2d: expected [N, C, H, W] with H, W >= 1, got ", shape_str(x.shape()));
  Tensor y = Tensor::empty({x.dim(0), x.dim(1)}, x.dtype(), x.device());
  kernels(x.device()).global_avg_pool2d_forward(x, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<GlobalAvgPool2dNode>();
    node->inputs = {x};
    record(y, node);
  }
  return y;
}

// ---- batch norm ---------------------------------------------------------------------------------

namespace {
struct BatchNormNode : Node {
  Tensor save_mean, save_invstd;
  const char* name() const override { return "batch_norm"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const Tensor& x = inputs[0];
    const Tensor& gamma = inputs[1];
    Tensor dx = empty_like(x);
    Tensor dgamma = empty_like(gamma);
    Tensor dbeta = empty_like(gamma);
    kernels(x.device())
        .batch_norm_backward(x, in_dtype_of(dy, x), gamma, save_mean, save_invstd, dx, dgamma,
                             dbeta);
    return {wants_grad(x) ? dx : Tensor(), dgamma, dbeta};
  }
};
struct BatchNormEvalNode : Node {
  const char* name() const override { return "batch_norm (eval)"; }
  std::vector<Tensor> backward(const Tensor&) override {
    throw Error(
        "batch_norm: backward through eval mode (running statistics) is not supported; call "
        "model.train() before training");
  }
};
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  DSC_CHECK(x.ndim() == 4, "batch_norm: expected [N, C, H, W], got ", shape_str(x.shape()));
  const Shape c{x.dim(1)};
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var}) {
    DSC_CHECK(t->shape() == c, "batch_norm: parameter ", shape_str(t->shape()), " for input ",
              shape_str(x.shape()), " (expected ", shape_str(c), ")");
    same_device("batch_norm", x, *t);
  }
  BatchNormParams p{momentum, eps};
  Tensor y = empty_like(x);
  const KernelTable& k = kernels(x.device());
  if (!training) {
    k.batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, p, y);
    // Eval mode is for evaluation: a backward pass that reaches it fails loudly rather than
    // silently dropping the gradients of everything before it.
    if (needs_grad({&x, &gamma, &beta})) {
      auto node = std::make_shared<BatchNormEvalNode>();
      node->inputs = {x, gamma, beta};
      record(y, node);
    }
    return y;
  }
  DSC_CHECK(x.dim(0) * x.dim(2) * x.dim(3) > 1, "batch_norm: training needs more than one value per channel, got ",
            shape_str(x.shape()));
  Tensor sm = Tensor::empty(c, gamma.dtype(), x.device());
  Tensor si = Tensor::empty(c, gamma.dtype(), x.device());
  k.batch_norm_forward_train(x, gamma, beta, p, running_mean, running_var, y, sm, si);
  if (needs_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<BatchNormNode>();
    node->inputs = {x, gamma, beta};
    node->save_mean = sm;
    node->save_invstd = si;
    record(y, node);
  }
  return y;
}

// ---- cross-entropy --------------------------------------------------------------------------------

namespace {
struct CrossEntropyNode : Node {
  Tensor probs, labels;
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& dloss) override {
    Tensor d = empty_like(probs);
    kernels(probs.device()).cross_entropy_backward(probs, labels, dloss, d);
    return {d};
  }
};
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  DSC_CHECK(logits.ndim() == 2 && labels.ndim() == 1 && labels.dim(0) == logits.dim(0),
            "cross_entropy: logits ", shape_str(logits.shape()), " and labels ",
            shape_str(labels.shape()), " (expected [N, M] and [N])");
  DSC_CHECK(labels.dtype() == DType::I32, "cross_entropy: labels must be i32, got ", labels.str());
  same_device("cross_entropy", logits, labels);
  const DType loss_type = logits.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor loss = Tensor::empty({1}, loss_type, logits.device());
  Tensor probs = empty_like(logits);
  kernels(logits.device()).cross_entropy_forward(logits, labels, loss, probs);
  if (needs_grad({&logits})) {
    auto node = std::make_shared<CrossEntropyNode>();
    node->inputs = {logits};
    node->probs = probs;
    node->labels = labels;
    record(loss, node);
  }
  return loss;
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  Tensor c = Tensor::zeros({1}, DType::I32, logits.device());
  kernels(logits.device()).count_correct(logits, labels, c);
  return static_cast<int64_t>(c.item());
}

// ---- reshape, mul, scale, sum, cast -------------------------------------------------------------

namespace {
struct ReshapeNode : Node {
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {dy.contiguous().reshape(inputs[0].shape())};
  }
};

struct MulNode : Node {
  const char* name() const override { return "mul"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const Tensor& a = inputs[0];
    const Tensor& b = inputs[1];
    Tensor da, db;
    const KernelTable& k = kernels(a.device());
    if (wants_grad(a)) {
      da = empty_like(a);
      k.mul(dy, b, da);
    }
    if (wants_grad(b)) {
      db = empty_like(b);
      k.mul(dy, a, db);
    }
    return {da, db};
  }
};

struct AddNode : Node {
  const char* name() const override { return "add"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {wants_grad(inputs[0]) ? dy : Tensor(), wants_grad(inputs[1]) ? dy : Tensor()};
  }
};

struct ScaleNode : Node {
  double alpha = 1;
  const char* name() const override { return "scale"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor d = dy.clone();
    kernels(d.device()).scale(d, alpha);
    return {d};
  }
};

struct SumNode : Node {
  const char* name() const override { return "sum"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const Tensor& x = inputs[0];
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    const Tensor d = dy.dtype() == x.dtype() ? dy : dy.to(x.dtype());
    kernels(x.device()).broadcast(d, dx);  // dy stays on the device: nothing waits for it
    return {dx};
  }
};

struct CastNode : Node {
  const char* name() const override { return "cast"; }
  // dy as it is: the engine converts it to the input's dtype as it accumulates, which for mixed
  // precision's f16 gradients of f32 master weights costs no separate cast (axpy widens).
  std::vector<Tensor> backward(const Tensor& dy) override { return {dy}; }
};
}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.contiguous().reshape(shape).detach();
  if (needs_grad({&x})) {
    auto node = std::make_shared<ReshapeNode>();
    node->inputs = {x};
    record(y, node);
  }
  return y;
}

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  DSC_CHECK(a_in.shape() == b_in.shape(), "add: shapes differ: ", shape_str(a_in.shape()), " and ",
            shape_str(b_in.shape()));
  Tensor a = a_in, b = b_in;
  to_common_compute_dtype(a, b);
  same_device("add", a, b);
  same_dtype("add", a, b);
  Tensor y = a.clone();
  kernels(a.device()).axpy(b, 1.0, y);
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<AddNode>();
    node->inputs = {a, b};
    record(y, node);
  }
  return y;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  DSC_CHECK(a_in.shape() == b_in.shape(), "mul: shapes differ: ", shape_str(a_in.shape()), " and ",
            shape_str(b_in.shape()));
  Tensor a = a_in, b = b_in;
  to_common_compute_dtype(a, b);
  same_device("mul", a, b);
  same_dtype("mul", a, b);
  Tensor y = empty_like(a);
  kernels(a.device()).mul(a, b, y);
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<MulNode>();
    node->inputs = {a, b};
    record(y, node);
  }
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  Tensor y = x.clone();
  kernels(x.device()).scale(y, alpha);
  if (needs_grad({&x})) {
    auto node = std::make_shared<ScaleNode>();
    node->inputs = {x};
    node->alpha = alpha;
    record(y, node);
  }
  return y;
}

Tensor sum(const Tensor& x) {
  const DType t = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor y = Tensor::empty({1}, t, x.device());
  kernels(x.device()).sum(x, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<SumNode>();
    node->inputs = {x};
    record(y, node);
  }
  return y;
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return cast_computed(x, x.to(dtype));
}

Tensor cast_computed(const Tensor& x, const Tensor& converted) {
  DSC_CHECK(converted.shape() == x.shape() && converted.device() == x.device(),
            "cast_computed: ", converted.str(), " is not a conversion of ", x.str());
  Tensor y = converted.detach();
  if (needs_grad({&x})) {
    auto node = std::make_shared<CastNode>();
    node->inputs = {x};
    record(y, node);
  }
  return y;
}

}  // namespace dsc::ops
