// StepGraph where the backend has no graphs (the CPU): capture says so without running the body,
// and replay refuses; callers fall back to running steps eagerly (the CUDA side is in
// tests/cuda/test_cuda_graph.cpp).
#include <doctest/doctest.h>

#include <string>

#include "core/error.h"
#include "core/graph.h"

using namespace dsc;

TEST_CASE("StepGraph on the CPU: unsupported, the body is not run, replay refuses") {
  std::string why;
  CHECK_FALSE(StepGraph::supported(Device::CPU, &why));
  CHECK(why == "the cpu backend has no graphs");
  StepGraph g(Device::CPU);
  int runs = 0;
  CHECK_FALSE(g.capture([&] { ++runs; }));
  CHECK(runs == 0);
  CHECK_FALSE(g.captured());
  CHECK(g.failure() == "the cpu backend has no graphs");
  CHECK_THROWS_WITH_AS(g.replay(), doctest::Contains("nothing captured"), dsc::Error);
}
