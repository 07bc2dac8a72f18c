// NcclComm in a build without NCCL (see nccl_comm.h): asking for it is an error.
#include "core/error.h"
#include "train/nccl_comm.h"

namespace dsc::dist {

struct NcclComm::Impl {};

NcclComm::NcclComm(int, int, int, const std::function<void(void*, int64_t)>&) {
  throw Error(
      "several ranks on GPUs need NCCL, and this build of dsc has none (a CUDA build finds "
      "nccl.h and libnccl); train on the CPU (--device cpu) or rebuild with NCCL");
}
NcclComm::~NcclComm() = default;
void NcclComm::allreduce_avg(float*, int64_t) {}
void NcclComm::start_allreduce_avg(float*, int64_t) {}
void NcclComm::join() {}
void NcclComm::allreduce_sum(double*, int64_t) {}
void NcclComm::broadcast(void*, int64_t, int) {}
int NcclComm::device_count() { return 0; }

}  // namespace dsc::dist
