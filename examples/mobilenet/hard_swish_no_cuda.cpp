// hard_swish's CUDA entry points when the installed dsc has no CUDA backend: no tensor can be on
// a GPU then, so they are never reached; they refuse, naming the op, should that change.
#include "core/error.h"
#include "hard_swish_kernels.h"

namespace mobilenet {

void hard_swish_forward_cuda(Elem, const void*, void*, int64_t, void*) {
  throw dsc::Error("hard_swish: this program was built against a dsc without CUDA");
}

void hard_swish_backward_cuda(Elem, const void*, const void*, void*, int64_t, void*) {
  throw dsc::Error("hard_swish: this program was built against a dsc without CUDA");
}

}  // namespace mobilenet
