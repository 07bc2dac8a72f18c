// The MobileNet-style model (see mobilenet.h).
#include "mobilenet.h"

#include <sstream>

#include "core/error.h"
#include "hard_swish.h"
#include "layers/model_registry.h"

namespace mobilenet {

namespace {
// conv (no bias) + BN, then hard_swish if `act`, appended to `seq` as name_conv, name_bn, name_act.
void conv_bn(dsc::Sequential& seq, const std::string& name, std::shared_ptr<dsc::Module> conv,
             int channels, bool act) {
  seq.add(name + "_conv", std::move(conv));
  seq.add(name + "_bn", std::make_shared<dsc::BatchNorm2d>(channels));
  if (act) seq.add(name + "_act", std::make_shared<HardSwish>());
}
}  // namespace

InvertedResidual::InvertedResidual(int in, int out, int expansion, int stride,
                                   std::mt19937_64& rng)
    : in_(in), out_(out), expansion_(expansion), stride_(stride) {
  DSC_CHECK(in >= 1 && out >= 1 && expansion >= 1 && (stride == 1 || stride == 2),
            "InvertedResidual: in ", in, ", out ", out, ", expansion ", expansion, ", stride ",
            stride, " (expected positive channels and expansion, stride 1 or 2)");
  body_ = register_module("body", std::make_shared<dsc::Sequential>());
  const int hidden = in * expansion;
  if (expansion != 1)
    conv_bn(*body_, "expand", std::make_shared<dsc::PointwiseConv2d>(in, hidden, false, rng),
            hidden, true);
  conv_bn(*body_, "depthwise",
          std::make_shared<dsc::DepthwiseConv2d>(hidden, 3, dsc::Conv2dOptions{stride, 1, false},
                                                 rng),
          hidden, true);
  conv_bn(*body_, "project", std::make_shared<dsc::PointwiseConv2d>(hidden, out, false, rng), out,
          false);
}

dsc::Tensor InvertedResidual::forward(const dsc::Tensor& x) {
  dsc::Tensor y = body_->forward(x);
  return stride_ == 1 && in_ == out_ ? dsc::ops::add(x, y) : y;
}

std::string InvertedResidual::describe() const {
  std::ostringstream os;
  os << "InvertedResidual(" << in_ << " -> " << out_ << ", expansion " << expansion_
     << ", stride " << stride_ << (stride_ == 1 && in_ == out_ ? ", residual" : "") << ")";
  return os.str();
}

std::shared_ptr<dsc::Sequential> make_mobilenet(uint64_t seed, const MobileNetOptions& o) {
  std::mt19937_64 rng(seed);
  auto net = std::make_shared<dsc::Sequential>();
  conv_bn(*net, "stem",
          std::make_shared<dsc::Conv2d>(o.in_channels, o.stem, 3,
                                        dsc::Conv2dOptions{1, 1, false}, rng),
          o.stem, true);
  int in = o.stem, index = 0;
  for (const MobileNetOptions::Stage& s : o.stages) {
    for (int r = 0; r < s.repeats; ++r) {
      net->add("block" + std::to_string(++index),
               std::make_shared<InvertedResidual>(in, s.channels, s.expansion,
                                                  r == 0 ? s.stride : 1, rng));
      in = s.channels;
    }
  }
  conv_bn(*net, "head", std::make_shared<dsc::PointwiseConv2d>(in, o.head, false, rng), o.head,
          true);
  net->add("pool", std::make_shared<dsc::GlobalAvgPool2d>());
  net->add("fc", std::make_shared<dsc::Linear>(o.head, o.classes, rng));
  return net;
}

void register_mobilenet() {
  if (dsc::model_registered("mobilenet")) return;
  dsc::register_model("mobilenet", "MobileNet-style CNN (inverted residual blocks, hard_swish)",
                      [](const dsc::ModelSpec& spec) -> std::shared_ptr<dsc::Module> {
                        MobileNetOptions o;
                        o.in_channels = spec.in_channels;
                        o.classes = spec.classes;
                        return make_mobilenet(spec.seed, o);
                      });
}

}  // namespace mobilenet
