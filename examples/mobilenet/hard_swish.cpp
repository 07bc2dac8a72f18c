// hard_swish's forward and backward (see hard_swish.h): allocate, pick the kernel of the inputs'
// device and element type, and let dsc::apply record the op in the graph.
#include "hard_swish.h"

#include "core/cuda_interop.h"
#include "core/error.h"
#include "hard_swish_kernels.h"

namespace mobilenet {
namespace {

Elem elem_of(const dsc::Tensor& t) {
  switch (t.dtype()) {
    case dsc::DType::F32: return Elem::F32;
    case dsc::DType::F64: return Elem::F64;
    case dsc::DType::F16: return Elem::F16;
    default:
      throw dsc::Error("hard_swish: expected an f32, f64 or f16 tensor, got " + t.str());
  }
}

// The element pointer for the tensor's device: data<T>() on the host, device_data<T>() on a GPU
// (both check the dtype and the device).
template <class T> const void* ptr(const dsc::Tensor& t) {
  return t.device() == dsc::Device::CUDA ? static_cast<const void*>(t.device_data<T>())
                                         : static_cast<const void*>(t.data<T>());
}
template <class T> void* ptr(dsc::Tensor& t) {
  return t.device() == dsc::Device::CUDA ? static_cast<void*>(t.device_data<T>())
                                         : static_cast<void*>(t.data<T>());
}
template <class Tensor> auto any_ptr(Tensor& t) {
  switch (elem_of(t)) {
    case Elem::F32: return ptr<float>(t);
    case Elem::F64: return ptr<double>(t);
    default: return ptr<uint16_t>(t);
  }
}

}  // namespace

dsc::Tensor HardSwishFn::forward(const dsc::Tensor& x_in) {
  const dsc::Tensor x = x_in.contiguous();
  save_for_backward({x});
  dsc::Tensor y = dsc::empty_like(x);
  if (x.device() == dsc::Device::CUDA) {
    hard_swish_forward_cuda(elem_of(x), any_ptr(x), any_ptr(y), x.numel(), dsc::cuda_stream());
  } else {
    hard_swish_forward_cpu(elem_of(x), any_ptr(x), any_ptr(y), x.numel());
  }
  return y;
}

std::vector<dsc::Tensor> HardSwishFn::backward(const dsc::Tensor& dy_in) {
  const dsc::Tensor& x = saved(0);
  const dsc::Tensor dy = dy_in.contiguous();
  dsc::Tensor dx = dsc::empty_like(x);
  if (x.device() == dsc::Device::CUDA) {
    hard_swish_backward_cuda(elem_of(x), any_ptr(x), any_ptr(dy), any_ptr(dx), x.numel(),
                             dsc::cuda_stream());
  } else {
    hard_swish_backward_cpu(elem_of(x), any_ptr(x), any_ptr(dy), any_ptr(dx), x.numel());
  }
  return {dx};
}

dsc::Tensor hard_swish(const dsc::Tensor& x) { return dsc::apply<HardSwishFn>(x); }

}  // namespace mobilenet
