// Reverse-mode autograd as a small table of rules: every differentiable op that sees an input
// requiring grad records a Node that keeps what its backward needs and its input tensors (the
// graph's edges). Tensor::backward() orders the nodes reachable from the scalar root in reverse
// topological order, hands each its output gradient, and accumulates (+=) what it returns into
// the inputs: into the next node's pending gradient, or into a leaf's grad().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsc {

struct Node {
  virtual ~Node() = default;
  // Gradients for each of `inputs` given the gradient of this node's single output; an undefined
  // tensor where an input needs none. A gradient may come in another float dtype than its input
  // (a cast's backward passes dy on as it is): the engine converts it when accumulating.
  virtual std::vector<Tensor> backward(const Tensor& doutput) = 0;
  virtual const char* name() const = 0;
  std::vector<Tensor> inputs;
  int scope = -1;  // the ProfileScope it was recorded in (-1: none)
};

// Whether ops record graph nodes on this thread (on by default).
bool grad_enabled();

// Scope in which no graph is recorded (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op with these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attach `node` (with its inputs set) as the producer of `output`.
void record(Tensor& output, std::shared_ptr<Node> node);

// Profiling hooks (train/profile.h), inert unless used. Nodes recorded on this thread while a
// ProfileScope is alive carry its id (Node::scope), so that the backward pass can be attributed
// to whatever recorded them (a layer's forward, the loss). While a BackwardObserver is installed
// on this thread, backward() tells it each node's scope before running the node's rule (and
// accumulating what it returns). Tested in tests/core/test_autograd.cpp.
class ProfileScope {
 public:
  explicit ProfileScope(int id);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  int previous_;
};

struct BackwardObserver {
  virtual ~BackwardObserver() = default;
  virtual void before_node(int scope) = 0;
};
// nullptr (the default): no observer. Returns the previous one.
BackwardObserver* set_backward_observer(BackwardObserver* observer);

// Gradient hook (data-parallel overlap, train/data_parallel.h). While one is installed on this
// thread, backward() calls leaf_ready(leaf) once for every leaf that requires grad and is an input
// of a node of this pass, as soon as its grad() is final: every node of the pass that has it as an
// input has run (or was skipped because no gradient reached it), in the order that happens; and
// after_node() after every node. On a GPU "final" means queued on the device. Installed for a
// scope by GradientHookScope. Tested in tests/core/test_autograd.cpp.
struct GradientHook {
  virtual ~GradientHook() = default;
  virtual void leaf_ready(const Tensor& leaf) = 0;
  virtual void after_node() {}
};

// Installs `hook` on this thread for its lifetime (nullptr: none), then restores the previous one.
class GradientHookScope {
 public:
  explicit GradientHookScope(GradientHook* hook);
  ~GradientHookScope();
  GradientHookScope(const GradientHookScope&) = delete;
  GradientHookScope& operator=(const GradientHookScope&) = delete;

 private:
  GradientHook* previous_;
};

}  // namespace dsc
