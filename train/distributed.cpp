// The process's world (see distributed.h): which communicator a process gets, the launcher's
// environment, the single-process communicator and the test-only fault injection.
// Tested with `mpirun -np 2` in tests/dist/ and, for one process, by every training test.
#include "train/distributed.h"

#include <cstdlib>
#include <iostream>
#include <string>

#include "core/error.h"

namespace dsc::dist {
namespace {

// A world of one: every collective is the identity.
class SingleCommunicator : public Communicator {
 public:
  std::string engine() const override { return "single"; }
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_max(double*, int64_t) override {}
  void barrier() override {}
  void broadcast(void*, int64_t, int) override {}
  void allreduce_mean(Tensor&) override {}
  void allreduce_sum(Tensor&) override {}
  void broadcast(Tensor&, int) override {}
  bool bind_gpu() override { return false; }
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::cerr << message << "\n" << std::flush;
    std::_Exit(code);
  }
};

// The first launcher variable that is set, as (name, value).
std::pair<std::string, int> launcher_variable() {
  // Open MPI's mpirun; MPICH's and Intel MPI's mpiexec (PMI); Slurm's srun.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"}) {
    if (const char* v = std::getenv(name); v && *v) return {name, std::atoi(v)};
  }
  return {"", 0};
}

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() {
  return std::make_unique<SingleCommunicator>();
}

int launcher_world_size() { return launcher_variable().second; }

Communicator& world() {
  static std::unique_ptr<Communicator> w = [] {
    const auto [var, n] = launcher_variable();
    // srun's step of one task needs no MPI; any other launcher's world of one gets it.
    if (n > 1 || (n == 1 && var != "SLURM_STEP_NUM_TASKS")) {
      if (std::unique_ptr<Communicator> mpi = make_mpi_communicator()) {
        // Another MPI's launcher (mpiexec of MPICH for Open MPI's library) starts singletons.
        DSC_CHECK(mpi->size() == n, "launched as ", n, " ranks (", var, "=", n,
                  "), but MPI sees a world of ", mpi->size(),
                  ": start train with the mpirun of the MPI it was built with");
        return mpi;
      }
    }
    DSC_CHECK(n <= 1, "launched as ", n, " ranks (", var, "=", n,
              "), but this build of dsc has no MPI: install MPI (Debian: openmpi-bin "
              "libopenmpi-dev) and rebuild, or run one process");
    return make_single_communicator();
  }();
  return *w;
}

int64_t test_injection_step(const char* what, int rank) {
  const char* v = std::getenv(what);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long r = std::strtol(v, &end, 10);
  DSC_CHECK(end != v && *end == ':', what, "=", v, ": expected RANK:STEP");
  const char* step_text = end + 1;
  const long long step = std::strtoll(step_text, &end, 10);
  DSC_CHECK(end != step_text && *end == '\0', what, "=", v, ": expected RANK:STEP");
  return r == rank ? step : -1;
}

}  // namespace dsc::dist
