// StepGraph (see graph.h): a thin owner of the device table's graph entries.
#include "core/graph.h"

#include <exception>

#include "core/backend.h"
#include "core/error.h"

namespace dsc {

StepGraph::StepGraph(Device device) : device_(device) {}

StepGraph::~StepGraph() { release(); }

bool StepGraph::supported(Device device, std::string* why_not) {
  const KernelTable& k = kernels(device);
  if (!k.graph_begin) {
    if (why_not) *why_not = detail::cat("the ", device_name(device), " backend has no graphs");
    return false;
  }
  return k.graph_supported == nullptr || k.graph_supported(why_not);
}

bool StepGraph::capture(const std::function<void()>& body) {
  release();
  failure_.clear();
  if (!supported(device_, &failure_)) return false;
  const KernelTable& k = kernels(device_);
  try {
    k.graph_begin();
  } catch (const std::exception& e) {
    failure_ = e.what();
    return false;
  }
  try {
    body();
    graph_ = k.graph_end();
  } catch (const std::exception& e) {
    k.graph_abort();
    failure_ = e.what();
    return false;
  }
  return true;
}

void StepGraph::replay() const {
  DSC_CHECK(graph_ != nullptr, "StepGraph::replay: nothing captured",
            failure_.empty() ? std::string() : " (" + failure_ + ")");
  kernels(device_).graph_replay(graph_);
}

void StepGraph::release() noexcept {
  if (graph_ != nullptr) kernels(device_).graph_release(graph_);
  graph_ = nullptr;
}

}  // namespace dsc
