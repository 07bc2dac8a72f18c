// Layer implementations (see layers.h): constructors create and initialise parameters, forward()
// composes differentiable ops. Tested by tests/core/test_layers.cpp and test_models.cpp.
#include "layers/layers.h"

#include <sstream>

#include "core/error.h"

namespace dsc {

// ---- CastCache ----------------------------------------------------------------------------------

CastCache::CastCache(const Module& model, const Tensor& flat, DType dtype) : ParameterCasts(dtype) {
  const auto is_float = [](DType t) { return t == DType::F32 || t == DType::F16 || t == DType::F64; };
  DSC_CHECK(flat.ndim() == 1 && flat.is_contiguous() && is_float(dtype) && is_float(flat.dtype()) &&
                dtype != flat.dtype(),
            "CastCache: expected a flat buffer of parameters and another float dtype, got ",
            flat.str(), " to ", dtype_name(dtype));
  converted_ = flat.to(dtype);
  for (const NamedTensor& p : model.parameters()) {
    const Tensor& t = p.tensor;
    if (t.storage() != flat.storage() || t.dtype() != flat.dtype() || !t.is_contiguous() ||
        t.offset() < flat.offset() || t.offset() + t.numel() > flat.offset() + flat.numel())
      continue;
    const auto at = static_cast<int64_t>(t.offset() - flat.offset());
    add(t, converted_.slice0(at, at + t.numel()).reshape(t.shape()));
  }
}

namespace {
std::string conv_desc(const char* what, int in, int out, int k, const Conv2dOptions& o) {
  std::ostringstream os;
  os << what << "(" << in << " -> " << out << ", " << k << "x" << k << ", stride " << o.stride
     << ", pad " << o.padding << (o.bias ? ", bias" : ", no bias")
     << (o.activation == Activation::ReLU ? ", relu" : "") << ")";
  return os.str();
}
Tensor activate(const Tensor& y, Activation a) {
  return a == Activation::ReLU ? ops::relu(y) : y;
}
void check_positive(const char* layer, const char* what, int v) {
  DSC_CHECK(v >= 1, layer, ": ", what, " must be >= 1, got ", v);
}
}  // namespace

// ---- Conv2d -------------------------------------------------------------------------------------

Conv2d::Conv2d(int in_channels, int out_channels, int kernel, Conv2dOptions opt,
               std::mt19937_64& rng)
    : in_(in_channels), out_(out_channels), kernel_(kernel), opt_(opt) {
  check_positive("Conv2d", "in_channels", in_channels);
  check_positive("Conv2d", "out_channels", out_channels);
  check_positive("Conv2d", "kernel", kernel);
  weight = register_parameter("weight", Tensor::empty({out_, in_, kernel_, kernel_}));
  he_uniform_(weight, rng);
  if (opt_.bias) bias = register_parameter("bias", Tensor::zeros({out_}));
}

Tensor Conv2d::forward(const Tensor& x) {
  return activate(
      ops::conv2d(x, weight, bias, opt_.stride, opt_.padding),
      opt_.activation);
}

std::string Conv2d::describe() const { return conv_desc("Conv2d", in_, out_, kernel_, opt_); }

// ---- DepthwiseConv2d ------------------------------------------------------------------------------

DepthwiseConv2d::DepthwiseConv2d(int channels, int kernel, Conv2dOptions opt, std::mt19937_64& rng)
    : channels_(channels), kernel_(kernel), opt_(opt) {
  check_positive("DepthwiseConv2d", "channels", channels);
  check_positive("DepthwiseConv2d", "kernel", kernel);
  weight = register_parameter("weight", Tensor::empty({channels_, 1, kernel_, kernel_}));
  he_uniform_(weight, rng, int64_t(channels_) * kernel_ * kernel_);  // Keras' depthwise fan-in
  if (opt_.bias) bias = register_parameter("bias", Tensor::zeros({channels_}));
}

Tensor DepthwiseConv2d::forward(const Tensor& x) {
  return activate(ops::conv2d(x, weight, bias, opt_.stride, opt_.padding, channels_),
                  opt_.activation);
}

std::string DepthwiseConv2d::describe() const {
  return conv_desc("DepthwiseConv2d", channels_, channels_, kernel_, opt_);
}

// ---- PointwiseConv2d ------------------------------------------------------------------------------

PointwiseConv2d::PointwiseConv2d(int in_channels, int out_channels, bool bias,
                                 std::mt19937_64& rng)
    : in_(in_channels), out_(out_channels), has_bias_(bias) {
  check_positive("PointwiseConv2d", "in_channels", in_channels);
  check_positive("PointwiseConv2d", "out_channels", out_channels);
  weight = register_parameter("weight", Tensor::empty({out_, in_, 1, 1}));
  he_uniform_(weight, rng);
  if (has_bias_) this->bias = register_parameter("bias", Tensor::zeros({out_}));
}

Tensor PointwiseConv2d::forward(const Tensor& x) {
  return ops::conv2d(x, weight, bias, 1, 0);
}

std::string PointwiseConv2d::describe() const {
  return conv_desc("PointwiseConv2d", in_, out_, 1, {1, 0, has_bias_});
}

// ---- DepSepConv2d ---------------------------------------------------------------------------------

DepSepConv2d::DepSepConv2d(int in_channels, int out_channels, int kernel, Conv2dOptions opt,
                           std::mt19937_64& rng)
    : opt_(opt) {
  depthwise = register_module(
      "depthwise", std::make_shared<DepthwiseConv2d>(
                       in_channels, kernel, Conv2dOptions{opt.stride, opt.padding, false}, rng));
  pointwise = register_module(
      "pointwise", std::make_shared<PointwiseConv2d>(in_channels, out_channels, opt.bias, rng));
}

Tensor DepSepConv2d::forward(const Tensor& x) {
  return ops::depsep_conv2d(x, depthwise->weight, pointwise->weight, pointwise->bias, opt_.stride,
                            opt_.padding, opt_.activation == Activation::ReLU);
}

std::string DepSepConv2d::describe() const {
  return "DepSepConv2d[" + depthwise->describe() + " + " + pointwise->describe() +
         (opt_.activation == Activation::ReLU ? ", relu" : "") + "]";
}

// ---- BatchNorm2d ----------------------------------------------------------------------------------

BatchNorm2d::BatchNorm2d(int channels, BatchNormOptions opt) : channels_(channels), opt_(opt) {
  check_positive("BatchNorm2d", "channels", channels);
  DSC_CHECK(opt.momentum >= 0 && opt.momentum <= 1 && opt.eps > 0,
            "BatchNorm2d: momentum must be in [0, 1] and eps > 0, got ", opt.momentum, " and ",
            opt.eps);
  gamma = register_parameter("gamma", Tensor::full({channels_}, 1.0));
  beta = register_parameter("beta", Tensor::zeros({channels_}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels_}));
  running_var = register_buffer("running_var", Tensor::full({channels_}, 1.0));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  // Statistics and affine parameters stay f32 under mixed precision (the kernels widen x).
  if (sync_ && training())
    return sync_batch_norm(x, gamma, beta, running_mean, running_var, opt_.momentum, opt_.eps,
                           sync_);
  return ops::batch_norm(x, gamma, beta, running_mean, running_var, training(), opt_.momentum,
                         opt_.eps);
}

std::string BatchNorm2d::describe() const {
  std::ostringstream os;
  os << "BatchNorm2d(" << channels_ << ", momentum " << opt_.momentum << ", eps " << opt_.eps
     << ")";
  return os.str();
}

// ---- MaxPool2d, Flatten, Linear, Sequential ------------------------------------------------------

std::string MaxPool2d::describe() const {
  std::ostringstream os;
  os << "MaxPool2d(" << kernel_ << "x" << kernel_ << ", stride " << stride_ << ")";
  return os.str();
}

Tensor Flatten::forward(const Tensor& x) {
  DSC_CHECK(x.ndim() >= 2, "Flatten: expected [N, ...], got ", shape_str(x.shape()));
  return ops::reshape(x, {x.dim(0), -1});
}

Linear::Linear(int in_features, int out_features, std::mt19937_64& rng, bool has_bias)
    : in_(in_features), out_(out_features) {
  check_positive("Linear", "in_features", in_features);
  check_positive("Linear", "out_features", out_features);
  weight = register_parameter("weight", Tensor::empty({out_, in_}));
  he_uniform_(weight, rng);
  if (has_bias) bias = register_parameter("bias", Tensor::zeros({out_}));
}

Tensor Linear::forward(const Tensor& x) {
  DSC_CHECK(x.ndim() == 2 && x.dim(1) == in_, "Linear(", in_, " -> ", out_, "): input ",
            shape_str(x.shape()), " (expected [N, ", in_, "])");
  return ops::linear(x, weight, bias);
}

std::string Linear::describe() const {
  std::ostringstream os;
  os << "Linear(" << in_ << " -> " << out_ << (bias.defined() ? ", bias" : "") << ")";
  return os.str();
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [name, child] : children()) h = child->forward(h);
  return h;
}

}  // namespace dsc
