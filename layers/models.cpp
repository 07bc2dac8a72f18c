// The seed's CNNs (see models.h) and a Keras-style summary. Parameter counts are asserted in
// tests/core/test_models.cpp.
#include "layers/models.h"

#include <iomanip>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/format.h"

namespace dsc {

ModelKind parse_model_kind(const std::string& name) {
  if (name == "normal") return ModelKind::Normal;
  if (name == "depsep") return ModelKind::DepSep;
  throw Error("unknown model '" + name + "' (expected 'normal' or 'depsep')");
}

const char* model_kind_name(ModelKind kind) {
  return kind == ModelKind::Normal ? "normal" : "depsep";
}

std::shared_ptr<Sequential> make_seed_cnn(ModelKind kind, uint64_t seed,
                                          const SeedCnnOptions& opt) {
  std::mt19937_64 rng(seed);
  auto net = std::make_shared<Sequential>();
  // 3x3 'same' padding at stride 1, bias, ReLU (Keras: activation='relu')
  const Conv2dOptions same{1, 1, true, Activation::ReLU};
  int in = opt.in_channels;
  for (int i = 1; i <= opt.convs; ++i) {
    const std::string name = "conv" + std::to_string(i);
    if (kind == ModelKind::Normal) {
      net->add(name, std::make_shared<Conv2d>(in, opt.channels, 3, same, rng));
    } else {
      net->add(name, std::make_shared<DepSepConv2d>(in, opt.channels, 3, same, rng));
    }
    in = opt.channels;
  }
  net->add("pool", std::make_shared<MaxPool2d>(opt.pool));
  net->add("bn", std::make_shared<BatchNorm2d>(opt.channels));
  net->add("flatten", std::make_shared<Flatten>());
  const int side = opt.image / opt.pool;
  net->add("fc", std::make_shared<Linear>(opt.channels * side * side, opt.classes, rng));
  return net;
}


std::string summary(const Sequential& model, const Shape& input_shape) {
  std::ostringstream os;
  os << std::left << std::setw(12) << "Layer" << std::setw(62) << "Type" << std::setw(20)
     << "Output shape" << "Param #\n";
  // Run a tiny forward pass (batch 1, no graph) to get every output shape.
  NoGradGuard no_grad;
  Shape in = input_shape;
  in[0] = 1;
  std::mt19937_64 rng(0);
  Tensor h = Tensor::randn(in, rng);
  const bool was_training = model.training();
  const_cast<Sequential&>(model).eval();
  for (const auto& [name, child] : model.children()) {
    h = child->forward(h);
    Shape out = h.shape();
    std::ostringstream shape;
    shape << "(None";
    for (size_t i = 1; i < out.size(); ++i) shape << ", " << out[i];
    shape << ")";
    os << std::setw(12) << name << std::setw(62) << child->describe() << std::setw(20)
       << shape.str() << with_commas(double(count_parameters(*child).total)) << "\n";
  }
  const_cast<Sequential&>(model).train(was_training);
  const ParamCount c = count_parameters(model);
  os << "Total params: " << with_commas(double(c.total)) << "\n"
     << "Trainable params: " << with_commas(double(c.trainable)) << "\n"
     << "Non-trainable params: " << with_commas(double(c.non_trainable())) << "\n";
  return os.str();
}

}  // namespace dsc
