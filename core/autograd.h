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

}  // namespace dsc
