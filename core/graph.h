// Step graphs: record the device work of one training step once and replay it with one call per
// step, so a step costs one launch of host time instead of one per kernel (the brief puts a
// batch-128 step of the seed's CNN at 0.3-0.5 ms of GPU work, where per-kernel launches matter).
//
//   StepGraph g(Device::CUDA);
//   if (g.capture([&] { ...queue one step... })) g.replay();  // the captured step, run once
//   else { ...run the step eagerly; g.failure() says why... }
//   ...copy the next inputs into the same tensors...; g.replay();
//
// What the body may do: queue device work on tensors whose storage outlives the graph (inputs it
// reads, parameters, gradients, optimizer state and outputs it writes: a replay reads and writes
// those same addresses) and allocate temporaries (reserved for the graph until it is destroyed).
// What it must not do: copy between host and device or wait for the device (item(), to(CPU)),
// which makes capture fail; or rely on host-side effects, which happen once, at capture, and
// never on a replay (host counters, host-computed arguments that change between steps: every
// value passed to a kernel is frozen in the graph). Backends without graph entries (the CPU)
// report capture as unsupported. Tested in tests/cuda/test_cuda_graph.cpp and, for the
// unsupported path, tests/core/test_graph.cpp.
#pragma once

#include <functional>
#include <string>

#include "core/tensor.h"

namespace dsc {

class StepGraph {
 public:
  explicit StepGraph(Device device);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Whether `device` can capture graphs at all (why not, otherwise).
  static bool supported(Device device, std::string* why_not = nullptr);

  // Runs body once on the host with its device work recorded instead of run (replay() runs it).
  // Returns false, with failure() set, if capturing is unsupported or failed; the recording is
  // then discarded, none of its device work has run, and the caller should run the step eagerly.
  // Replaces an earlier capture.
  bool capture(const std::function<void()>& body);
  bool captured() const { return graph_ != nullptr; }
  // Queues the recorded work (asynchronously, like any kernel launch).
  void replay() const;
  const std::string& failure() const { return failure_; }

 private:
  void release() noexcept;

  Device device_;
  void* graph_ = nullptr;
  std::string failure_;
};

}  // namespace dsc
