// A build without MPI (DSC_MPI off or MPI not found): no MPI communicator, so only a world of one
// process (distributed.cpp refuses a launch of several ranks).
#include "train/distributed.h"

namespace dsc::dist {

bool built_with_mpi() { return false; }
bool built_with_nccl() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator() { return nullptr; }

}  // namespace dsc::dist
