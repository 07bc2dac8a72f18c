// NCCL collectives of GPU memory for the MPI communicator (distributed_mpi.cpp), bootstrapped
// through it: rank 0 makes the unique id, the caller's broadcast (MPI_Bcast) hands it to every
// rank, each rank joins with ncclCommInitRank on its GPU. Every collective is ordered on dsc's
// CUDA stream (the overlapped ones run on a second stream between an event and a join), so it
// comes after the work queued before it and the host does not wait. One communicator serialises
// its collectives in issue order: a synchronised BatchNorm sum queued during the backward runs
// after the buckets started before it.
// Compiled only in a CUDA build with NCCL (nccl_comm.cpp); otherwise nccl_comm_none.cpp, whose
// constructor throws. Tested on one GPU as one rank in tests/nccl (not run yet: no GPU has been
// lent to this project).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace dsc::dist {

class NcclComm {
 public:
  // Binds this process to GPU `device` and joins the NCCL communicator of `size` ranks.
  // broadcast_from_0(bytes, n): after it every rank holds rank 0's n bytes.
  NcclComm(int rank, int size, int device,
           const std::function<void(void* bytes, int64_t n)>& broadcast_from_0);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  // In place, on dsc's stream, f32 device memory.
  void allreduce_avg(float* data, int64_t n);
  // The same on a second stream, after the work queued on dsc's stream so far, so that it runs
  // beside what is queued next (gradient buckets during the backward); join() orders dsc's stream
  // after every one started. Neither waits on the host, so a step graph can record them.
  void start_allreduce_avg(float* data, int64_t n);
  void join();
  // Sum of f64 device memory, in place, on dsc's stream.
  void allreduce_sum(double* data, int64_t n);
  void broadcast(void* data, int64_t bytes, int root);
  // The number of GPUs this process sees.
  static int device_count();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsc::dist
