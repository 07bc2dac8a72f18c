// NcclComm (train/nccl_comm.h) on one GPU as a world of one rank, without MPI (rank 0's unique id
// needs no broadcast): the collectives data-parallel training runs on a GPU — the average in
// place on dsc's stream, the buckets' averages on the second stream joined back to dsc's, the
// same recorded in a CUDA graph and replayed, and the f64 sums of synchronised BatchNorm — run
// without an error and leave one rank's values as they were, bit for bit (over one rank). What
// needs several GPUs (the sums) is not checked here. Skipped without a GPU.
#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "core/cuda_interop.h"
#include "core/tensor.h"
#include "train/nccl_comm.h"

namespace {

using dsc::Device;
using dsc::DType;
using dsc::Tensor;

const bool kNoGpu = dsc::dist::NcclComm::device_count() == 0 || !dsc::cuda_available();

cudaStream_t dsc_stream() { return static_cast<cudaStream_t>(dsc::cuda_stream()); }

// Random f32 values on the host and a copy on the GPU.
std::pair<Tensor, Tensor> random_buffer(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor host = Tensor::randn({n}, rng, 1.0, DType::F32);
  return {host, host.to(Device::CUDA)};
}

}  // namespace

TEST_CASE("NcclComm, one rank: the average in place and in buckets keeps the values" *
          doctest::skip(kNoGpu)) {
  dsc::dist::NcclComm comm(0, 1, 0, [](void*, int64_t) {});
  const int64_t n = 100003;  // not a multiple of anything NCCL splits by
  auto [host, dev] = random_buffer(n, 11);
  comm.allreduce_avg(dev.device_data<float>(), n);
  CHECK(dev.to(Device::CPU).to_vector() == host.to_vector());
  // Three buckets from the end, as DataParallel starts them, then the join.
  float* p = dev.device_data<float>();
  const int64_t cuts[] = {0, 40000, 90001, n};
  for (int b = 2; b >= 0; --b) comm.start_allreduce_avg(p + cuts[b], cuts[b + 1] - cuts[b]);
  comm.join();
  REQUIRE(cudaStreamSynchronize(dsc_stream()) == cudaSuccess);
  CHECK(dev.to(Device::CPU).to_vector() == host.to_vector());
  comm.join();  // nothing started: nothing to join
  Tensor b(dev);
  comm.broadcast(b.device_data<float>(), n * int64_t(sizeof(float)), 0);
  CHECK(b.to(Device::CPU).to_vector() == host.to_vector());
  // Synchronised BatchNorm's f64 sums.
  std::mt19937_64 rng(13);
  const Tensor sums = Tensor::randn({129}, rng, 1.0, DType::F64);
  Tensor sums_dev = sums.to(Device::CUDA);
  comm.allreduce_sum(sums_dev.device_data<double>(), sums_dev.numel());
  CHECK(sums_dev.to(Device::CPU).to_vector() == sums.to_vector());
}

TEST_CASE("NcclComm, one rank: bucketed averages recorded in a CUDA graph replay" *
          doctest::skip(kNoGpu)) {
  dsc::dist::NcclComm comm(0, 1, 0, [](void*, int64_t) {});
  const int64_t n = 65536 + 17;
  auto [host, dev] = random_buffer(n, 12);
  float* p = dev.device_data<float>();
  cudaStream_t s = dsc_stream();
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
  comm.start_allreduce_avg(p + n / 2, n - n / 2);
  comm.start_allreduce_avg(p, n / 2);
  comm.join();  // the second stream joins the capture back: EndCapture fails otherwise
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  for (int i = 0; i < 3; ++i) REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(dev.to(Device::CPU).to_vector() == host.to_vector());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}
