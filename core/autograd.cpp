// The backward pass (see autograd.h): a depth-first topological order of the nodes reachable from
// the root, walked in reverse; each node's output gradient is the sum of what its consumers sent.
#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/backend.h"
#include "core/error.h"

namespace dsc {
namespace {
thread_local bool g_grad_enabled = true;
thread_local int g_scope = -1;
thread_local BackwardObserver* g_observer = nullptr;
thread_local GradientHook* g_hook = nullptr;

// dst += src, allocating dst on first use (a fresh copy, never aliasing src). The gradient of a
// tensor has that tensor's dtype: src in another dtype is converted, by the accumulation itself
// where it adds f16 into f32 (axpy widens; mixed precision's master gradients).
void accumulate(Tensor& dst, const Tensor& src, DType dtype) {
  if (!dst.defined()) {
    // Take over a gradient nobody else holds; copy one that is shared (e.g. a passed-through dout).
    if (src.dtype() != dtype) {
      dst = src.to(dtype);
    } else {
      dst = src.storage().use_count() == 1 ? src : src.clone();
    }
  } else {
    DSC_CHECK(dst.shape() == src.shape(), "backward: gradient ", src.str(),
              " does not match accumulator ", dst.str());
    const bool widened = src.dtype() == DType::F16 && dst.dtype() == DType::F32;
    Tensor s = src.dtype() == dst.dtype() || widened ? src : src.to(dst.dtype());
    kernels(dst.device()).axpy(s, 1.0, dst);
  }
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t && t->defined() && (t->requires_grad() || t->grad_fn())) return true;
  }
  return false;
}

void record(Tensor& output, std::shared_ptr<Node> node) {
  node->scope = g_scope;
  output.set_grad_fn(std::move(node));
}

ProfileScope::ProfileScope(int id) : previous_(g_scope) { g_scope = id; }
ProfileScope::~ProfileScope() { g_scope = previous_; }

BackwardObserver* set_backward_observer(BackwardObserver* observer) {
  BackwardObserver* previous = g_observer;
  g_observer = observer;
  return previous;
}

GradientHookScope::GradientHookScope(GradientHook* hook) : previous_(g_hook) { g_hook = hook; }
GradientHookScope::~GradientHookScope() { g_hook = previous_; }

void Tensor::backward() const {
  DSC_CHECK(numel() == 1, "backward() needs a scalar, got ", str());
  DSC_CHECK(grad_fn() || requires_grad(), "backward(): tensor ", str(),
            " does not require grad (no graph was recorded)");
  if (!grad_fn()) {  // a leaf scalar
    Tensor one = Tensor::full(shape(), 1.0, dtype(), device());
    Tensor g = grad();
    accumulate(g, one, dtype());
    const_cast<Tensor*>(this)->set_grad(g);
    if (g_hook) g_hook->leaf_ready(*this);
    return;
  }

  // Post-order DFS (iterative, so deep graphs cannot overflow the stack).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{grad_fn().get(), 0}};
  seen.insert(grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      Node* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // With a gradient hook: how many inputs of the pass's nodes each leaf still is; at 0 its
  // gradient is final.
  std::unordered_map<const TensorImpl*, int> leaf_uses;
  const auto is_leaf = [](const Tensor& t) {
    return t.defined() && !t.grad_fn() && t.requires_grad();
  };
  if (g_hook)
    for (Node* node : order)
      for (const Tensor& in : node->inputs)
        if (is_leaf(in)) ++leaf_uses[in.id()];
  const auto node_done = [&](Node* node) {
    if (!g_hook) return;
    for (const Tensor& in : node->inputs)
      if (is_leaf(in) && --leaf_uses[in.id()] == 0) g_hook->leaf_ready(in);
    g_hook->after_node();
  };

  std::unordered_map<Node*, Tensor> pending;
  pending[grad_fn().get()] = Tensor::full(shape(), 1.0, dtype(), device());
  NoGradGuard no_grad;  // backward rules never record graphs
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) {  // no gradient flows here
      node_done(node);
      continue;
    }
    Tensor dout = std::move(found->second);
    pending.erase(found);
    if (g_observer) g_observer->before_node(node->scope);
    std::vector<Tensor> grads = node->backward(dout);
    DSC_CHECK(grads.size() == node->inputs.size(), node->name(), " backward returned ",
              grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      Tensor& in = node->inputs[i];
      if (!grads[i].defined() || !in.defined()) continue;
      // A rule may hand one tensor to several inputs (add's pass-through): copy the repeats, so
      // that no two accumulators take over (and then += into) the same storage.
      for (size_t j = 0; j < i; ++j)
        if (grads[j].defined() && grads[j].storage() == grads[i].storage()) {
          grads[i] = grads[i].clone();
          break;
        }
      DSC_CHECK(grads[i].shape() == in.shape(), node->name(), " backward: gradient ",
                grads[i].str(), " for input ", in.str());
      if (in.grad_fn()) {
        accumulate(pending[in.grad_fn().get()], grads[i], in.dtype());
      } else if (in.requires_grad()) {
        Tensor g = in.grad();
        accumulate(g, grads[i], in.dtype());
        in.set_grad(g);
      }
    }
    node_done(node);
  }
}

}  // namespace dsc
