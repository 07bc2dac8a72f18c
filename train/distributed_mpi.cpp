// The MPI communicator (see distributed.h): MPI_Init on first use, ranks from MPI_COMM_WORLD,
// local ranks from the shared-memory split, host collectives with MPI_Allreduce / MPI_Bcast, and
// tensor collectives on the CPU through MPI (MPI_Iallreduce when overlapped) or on a GPU through
// NCCL (nccl_comm.h). MPI calls
// return their errors (MPI_ERRORS_RETURN) and become dsc::Error; an error that ends a rank ends
// the world through abort (MPI_Abort). Tested with `mpirun -np 2` in tests/dist/.
// The C API only: OpenMPI's and MPICH's mpi.h otherwise pull in their C++ bindings in C++.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <iostream>
#include <vector>

#include "core/error.h"
#include "train/distributed.h"
#include "train/nccl_comm.h"

namespace dsc::dist {
namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string(what) + " failed: " + std::string(text, size_t(len)));
}

int count_of(int64_t n) {
  DSC_CHECK(n >= 0 && n <= INT_MAX, "MPI: a collective of ", n, " elements (at most ", INT_MAX,
            ")");
  return int(n);
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) mpi_check(MPI_Init(nullptr, nullptr), "MPI_Init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    mpi_check(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  ~MpiCommunicator() override {
    nccl_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  std::string engine() const override { return nccl_ ? "MPI+NCCL" : "MPI"; }

  void allreduce_sum(double* data, int64_t n) override {
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, data, count_of(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
  void allreduce_max(double* data, int64_t n) override {
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, data, count_of(n), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }
  void barrier() override { mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  void broadcast(void* data, int64_t bytes, int root) override {
    mpi_check(MPI_Bcast(data, count_of(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }

  void allreduce_mean(Tensor& t) override {
    check_f32(t);
    if (t.device() == Device::CUDA && nccl_) {
      nccl_->allreduce_avg(t.device_data<float>(), t.numel());
      return;
    }
    on_host(t, [&](float* p, int64_t n) {
      mpi_check(MPI_Allreduce(MPI_IN_PLACE, p, count_of(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                "MPI_Allreduce");
      divide_by_ranks(p, n);
    });
  }
  void allreduce_sum(Tensor& t) override {
    DSC_CHECK(t.dtype() == DType::F64 && t.is_contiguous(),
              "allreduce_sum: expected a contiguous f64 tensor, got ", t.str());
    if (t.device() == Device::CUDA && nccl_) {
      nccl_->allreduce_sum(t.device_data<double>(), t.numel());
      return;
    }
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    allreduce_sum(h.data<double>(), h.numel());
    if (t.device() != Device::CPU) t.copy_(h);
  }
  // CPU memory: MPI_Iallreduce, completed (and divided) in wait_all; GPU memory: NCCL on its
  // second stream, or without NCCL through the host at once.
  void start_allreduce_mean(Tensor& t) override {
    check_f32(t);
    if (t.device() == Device::CUDA && nccl_) {
      nccl_->start_allreduce_avg(t.device_data<float>(), t.numel());
      return;
    }
    if (t.device() != Device::CPU) {
      allreduce_mean(t);
      return;
    }
    Started s{t.data<float>(), t.numel()};
    MPI_Request request = MPI_REQUEST_NULL;
    mpi_check(MPI_Iallreduce(MPI_IN_PLACE, s.data, count_of(s.n), MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD, &request),
              "MPI_Iallreduce");
    started_.push_back(s);
    requests_.push_back(request);
  }
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    mpi_check(MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall");
  }
  void wait_all() override {
    if (nccl_) nccl_->join();
    if (requests_.empty()) return;
    mpi_check(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall");
    for (const Started& s : started_) divide_by_ranks(s.data, s.n);
    started_.clear();
    requests_.clear();
  }
  void broadcast(Tensor& t, int root) override {
    DSC_CHECK(t.is_contiguous(), "broadcast: expected a contiguous tensor, got ", t.str());
    if (t.device() == Device::CUDA && nccl_) {
      nccl_->broadcast(t.raw(), int64_t(t.nbytes()), root);
      return;
    }
    Tensor h = t.device() == Device::CPU ? t : t.to(Device::CPU);
    broadcast(h.raw(), int64_t(h.nbytes()), root);
    if (t.device() != Device::CPU) t.copy_(h);
  }

  bool bind_gpu() override {
    if (nccl_) return true;
    const int gpus = NcclComm::device_count();
    if (gpus == 0) return false;
    DSC_CHECK(local_size_ <= gpus, local_size_, " ranks on this host share ", gpus,
              " GPU(s): start at most one rank per GPU (mpirun -np ", gpus,
              " per host), or train on the CPU with --device cpu");
    nccl_ = std::make_unique<NcclComm>(rank_, size_, local_rank_,
                                       [&](void* p, int64_t n) { broadcast(p, n, 0); });
    return true;
  }

  [[noreturn]] void abort(const std::string& message, int code) override {
    std::cerr << message << "\n" << std::flush;
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  // f32 data of t as host memory for fn(pointer, n); a GPU tensor goes through a host copy.
  template <class Fn>
  void on_host(Tensor& t, Fn fn) {
    if (t.device() == Device::CPU) {
      fn(t.data<float>(), t.numel());
      return;
    }
    Tensor h = t.to(Device::CPU);
    fn(h.data<float>(), h.numel());
    t.copy_(h);
  }

  static void check_f32(const Tensor& t) {
    DSC_CHECK(t.dtype() == DType::F32 && t.is_contiguous(),
              "allreduce: expected a contiguous f32 tensor, got ", t.str());
  }
  // The sum over the ranks becomes their mean.
  void divide_by_ranks(float* p, int64_t n) const {
    const float ranks = float(size_);
    for (int64_t i = 0; i < n; ++i) p[i] /= ranks;
  }

  std::unique_ptr<NcclComm> nccl_;
  // The non-blocking means started since the last wait_all, and their requests side by side
  // (for MPI_Testall / MPI_Waitall, which complete them in place).
  struct Started {
    float* data;
    int64_t n;
  };
  std::vector<Started> started_;
  std::vector<MPI_Request> requests_;
};

}  // namespace

bool built_with_mpi() { return true; }
bool built_with_nccl() {
#ifdef DSC_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace dsc::dist
