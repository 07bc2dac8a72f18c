// Data-parallel training across processes: the communicator of the process's world (MPI for
// launch, rank discovery and CPU collectives; NCCL for collectives of GPU memory, bootstrapped
// through MPI: rank 0 makes the unique id, MPI broadcasts it).
//
//   dist::Communicator& w = dist::world();       // made on first use, once per process
//   w.allreduce_mean(grads);                      // f32 buffer on the training device, in place
//
// One process without a launcher, or a launcher that started one rank, trains as before: a world
// of size 1 whose collectives return at once. A launch of several ranks (mpirun, srun: the
// launcher's environment says how many) in a build without MPI is an error, not N copies of one
// run. Collectives are called by every rank in the same order with the same sizes; their results
// are the same on every rank (MPI_Allreduce / ncclAllReduce), which is what keeps the replicas'
// weights identical. An error on one rank ends every rank (abort) with a message naming it.
// Tested with `mpirun -np 2` in tests/dist/ (skipped without MPI).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace dsc::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // The rank among the processes of this host (which GPU a rank takes).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // "single", "MPI" or "MPI+NCCL" (after bind_gpu).
  virtual std::string engine() const = 0;

  // ---- host collectives, in place ----
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_max(double* data, int64_t n) = 0;
  virtual void barrier() = 0;
  // Every rank gets root's bytes.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;

  // ---- collectives of tensors on the training device, in place ----
  // Mean over the ranks of an f32 buffer: the sum, then divided by size(). On the CPU
  // MPI_Allreduce; on a GPU ncclAllReduce (ncclAvg) on dsc's stream, ordered after the work queued
  // before it, without a host round trip (bind_gpu); without NCCL a GPU buffer goes through the
  // host.
  virtual void allreduce_mean(Tensor& buffer) = 0;
  // The same mean, overlapped with other work (gradient buckets during the backward):
  // start_allreduce_mean starts it and returns (the buffer stays untouched until wait_all);
  // progress() lets the engine move the started ones on (MPI advances a non-blocking collective
  // only inside MPI calls); wait_all() returns when every started one is complete (on a GPU with
  // NCCL: when dsc's stream is ordered after them, no host wait). Every rank starts the same
  // buffers in the same order. Engines that cannot overlap run allreduce_mean at the start.
  virtual void start_allreduce_mean(Tensor& buffer) { allreduce_mean(buffer); }
  virtual void progress() {}
  virtual void wait_all() {}
  // Sum over the ranks of an f64 tensor (synchronised BatchNorm's per-channel sums), same paths
  // (NCCL: ncclSum of ncclFloat64 on dsc's stream).
  virtual void allreduce_sum(Tensor& sums) = 0;
  // Every rank gets root's values of t (BatchNorm's running statistics).
  virtual void broadcast(Tensor& t, int root) = 0;

  // GPU training, called before anything touches the GPU: when this host has GPUs, binds this
  // rank to GPU local_rank() and sets up NCCL for the device collectives, and returns true;
  // false without a GPU. Throws when there are more ranks on this host than GPUs, or no NCCL.
  virtual bool bind_gpu() = 0;

  // Ends every rank of the world with exit code `code` after printing `message` on this rank's
  // stderr (MPI_Abort). In a world of one, exits.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;

 protected:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// The process's communicator (made on first use; MPI is initialised then and finalised at exit).
Communicator& world();

// Whether this build has MPI (DSC_MPI in CMake) and NCCL.
bool built_with_mpi();
bool built_with_nccl();

// The number of ranks the environment says a launcher started (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// SLURM_STEP_NUM_TASKS under srun), 0 when no launcher's variables are set.
int launcher_world_size();

// Test-only fault injection, from the environment of the ranks (never set in normal runs):
//   DSC_TEST_INJECT_OVERFLOW=R:S   rank R finds an overflow (inf) in its gradients at step S
//   DSC_TEST_INJECT_CRASH=R:S      rank R kills itself with SIGKILL at step S
//   DSC_TEST_INJECT_ERROR=R:S      rank R throws dsc::Error at step S
// S counts the run's training steps from 1. Returns S when `what` is set for `rank`, else -1;
// read once, before training (a malformed value is an error naming the variable).
int64_t test_injection_step(const char* what, int rank);

// ---- implementations (distributed_mpi.cpp, or distributed_nompi.cpp without MPI) ----
std::unique_ptr<Communicator> make_single_communicator();
// Initialises MPI (nullptr without MPI in this build).
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace dsc::dist
