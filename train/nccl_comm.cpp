// NcclComm with NCCL (see nccl_comm.h): the bootstrap (ncclGetUniqueId on rank 0, broadcast
// through MPI, ncclCommInitRank), in-place collectives on dsc's stream and the overlapped ones on
// a second stream. Compiled only in a CUDA build that found NCCL; not run yet (no GPU lent so far).
#include "train/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "core/cuda_interop.h"
#include "core/error.h"

namespace dsc::dist {
namespace {

void nccl_check(ncclResult_t r, const char* what) {
  DSC_CHECK(r == ncclSuccess, what, " failed: ", ncclGetErrorString(r));
}
void cuda_check(cudaError_t r, const char* what) {
  DSC_CHECK(r == cudaSuccess, what, " failed: ", cudaGetErrorString(r));
}
cudaStream_t stream() { return static_cast<cudaStream_t>(cuda_stream()); }

}  // namespace

struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t side = nullptr;      // the overlapped collectives' stream
  std::vector<cudaEvent_t> events;  // one per collective started since the last join
  size_t started = 0;
  cudaEvent_t joined = nullptr;
  cudaEvent_t event(size_t i) {
    while (events.size() <= i) {
      cudaEvent_t e;
      cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
      events.push_back(e);
    }
    return events[i];
  }
};

NcclComm::NcclComm(int rank, int size, int device,
                   const std::function<void(void*, int64_t)>& broadcast_from_0)
    : impl_(std::make_unique<Impl>()) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  ncclUniqueId id;
  if (rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  broadcast_from_0(&id, sizeof id);
  nccl_check(ncclCommInitRank(&impl_->comm, size, id, rank), "ncclCommInitRank");
  cuda_check(cudaStreamCreateWithFlags(&impl_->side, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda_check(cudaEventCreateWithFlags(&impl_->joined, cudaEventDisableTiming), "cudaEventCreate");
}

NcclComm::~NcclComm() {
  if (!impl_) return;
  if (impl_->comm) ncclCommDestroy(impl_->comm);
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);
  if (impl_->joined) cudaEventDestroy(impl_->joined);
  if (impl_->side) cudaStreamDestroy(impl_->side);
}

void NcclComm::allreduce_avg(float* data, int64_t n) {
  nccl_check(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclAvg, impl_->comm, stream()),
             "ncclAllReduce (gradients)");
}

void NcclComm::start_allreduce_avg(float* data, int64_t n) {
  const cudaEvent_t ready = impl_->event(impl_->started++);
  cuda_check(cudaEventRecord(ready, stream()), "cudaEventRecord");
  cuda_check(cudaStreamWaitEvent(impl_->side, ready, 0), "cudaStreamWaitEvent");
  nccl_check(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclAvg, impl_->comm, impl_->side),
             "ncclAllReduce (gradient bucket)");
}

void NcclComm::join() {
  if (impl_->started == 0) return;
  cuda_check(cudaEventRecord(impl_->joined, impl_->side), "cudaEventRecord");
  cuda_check(cudaStreamWaitEvent(stream(), impl_->joined, 0), "cudaStreamWaitEvent");
  impl_->started = 0;
}

void NcclComm::allreduce_sum(double* data, int64_t n) {
  nccl_check(ncclAllReduce(data, data, size_t(n), ncclFloat64, ncclSum, impl_->comm, stream()),
             "ncclAllReduce (f64 sums)");
}

void NcclComm::broadcast(void* data, int64_t bytes, int root) {
  nccl_check(ncclBroadcast(data, data, size_t(bytes), ncclUint8, root, impl_->comm, stream()),
             "ncclBroadcast");
}

int NcclComm::device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace dsc::dist
