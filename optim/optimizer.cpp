// ParameterBuffer, Adam and SGD (see optimizer.h); the arithmetic is in the device kernels
// (core/cpu/optimizer.h). Tested against hand-computed steps in tests/core/test_optim.cpp.
#include "optim/optimizer.h"

#include <sstream>

#include "core/error.h"

namespace dsc {

ParameterBuffer::ParameterBuffer(const Module& model) {
  std::vector<NamedTensor> params = model.parameters();
  DSC_CHECK(!params.empty(), "optimizer: the model has no parameters");
  const Device dev = params[0].tensor.device();
  int64_t total = 0;
  for (const NamedTensor& p : params) {
    DSC_CHECK(p.tensor.dtype() == DType::F32, "optimizer: parameter ", p.name,
              " must be f32 (master weights), got ", p.tensor.str());
    DSC_CHECK(p.tensor.device() == dev, "optimizer: parameters on different devices (", p.name,
              " is on ", device_name(p.tensor.device()), ")");
    total += p.tensor.numel();
  }
  values_ = Tensor::empty({total}, DType::F32, dev);
  grads_ = Tensor::zeros({total}, DType::F32, dev);
  int64_t off = 0;
  for (NamedTensor& p : params) {
    const int64_t n = p.tensor.numel();
    p.tensor.rehome_(values_.slice0(off, off + n).reshape(p.tensor.shape()));
    p.tensor.set_grad(grads_.slice0(off, off + n).reshape(p.tensor.shape()));
    off += n;
  }
}

Optimizer::Optimizer(const Module& model)
    : params_(model), step_count_(Tensor::zeros({1}, DType::F32, params_.device())) {}

int64_t Optimizer::steps() const { return static_cast<int64_t>(step_count_.item()); }

Adam::Adam(const Module& model, AdamOptions opt) : Optimizer(model), opt_(opt) {
  DSC_CHECK(opt.lr > 0 && opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1 &&
                opt.eps > 0 && opt.weight_decay >= 0,
            "Adam: invalid options (need lr > 0, betas in [0, 1), eps > 0, weight_decay >= 0)");
  lr_ = opt.lr;
  m_ = Tensor::zeros({params_.numel()}, DType::F32, params_.device());
  v_ = Tensor::zeros({params_.numel()}, DType::F32, params_.device());
}

void Adam::apply(const Tensor* found_inf, const Tensor* scale, float grad_scale) {
  AdamParams p{.lr = lr_,
               .beta1 = opt_.beta1,
               .beta2 = opt_.beta2,
               .eps = opt_.eps,
               .weight_decay = opt_.weight_decay,
               .grad_scale = grad_scale,
               .found_inf = found_inf,
               .scale = scale,
               .step_count = &step_count_};
  kernels(params_.device()).adam_step(params_.values(), params_.grads(), m_, v_, p);
}

std::string Adam::describe() const {
  std::ostringstream os;
  os << "Adam(lr " << lr_ << ", betas " << opt_.beta1 << "/" << opt_.beta2 << ", eps " << opt_.eps
     << ", weight_decay " << opt_.weight_decay << ")";
  return os.str();
}

Sgd::Sgd(const Module& model, SgdOptions opt) : Optimizer(model), opt_(opt) {
  DSC_CHECK(opt.lr > 0 && opt.momentum >= 0 && opt.momentum < 1 && opt.weight_decay >= 0,
            "SGD: invalid options (need lr > 0, momentum in [0, 1), weight_decay >= 0)");
  DSC_CHECK(!opt.nesterov || opt.momentum > 0, "SGD: Nesterov needs momentum > 0");
  lr_ = opt.lr;
  buf_ = Tensor::zeros({params_.numel()}, DType::F32, params_.device());
}

void Sgd::apply(const Tensor* found_inf, const Tensor* scale, float grad_scale) {
  SgdParams p{.lr = lr_,
              .momentum = opt_.momentum,
              .weight_decay = opt_.weight_decay,
              .nesterov = opt_.nesterov,
              .grad_scale = grad_scale,
              .found_inf = found_inf,
              .scale = scale,
              .step_count = &step_count_};
  kernels(params_.device()).sgd_step(params_.values(), params_.grads(), buf_, p);
}

std::string Sgd::describe() const {
  std::ostringstream os;
  os << "SGD(lr " << lr_ << ", momentum " << opt_.momentum << (opt_.nesterov ? ", nesterov" : "")
     << ", weight_decay " << opt_.weight_decay << ")";
  return os.str();
}

std::vector<NamedTensor> Adam::state() const {
  std::vector<NamedTensor> s = Optimizer::state();
  s.push_back({"optimizer.adam.m", m_});
  s.push_back({"optimizer.adam.v", v_});
  return s;
}

std::vector<NamedTensor> Sgd::state() const {
  std::vector<NamedTensor> s = Optimizer::state();
  s.push_back({"optimizer.sgd.momentum", buf_});
  return s;
}

}  // namespace dsc
