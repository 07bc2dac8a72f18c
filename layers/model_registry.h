// Models by name: what `train --model NAME` (and any program built on the training library)
// builds. The seed's two CNNs are registered as "normal" and "depsep"; a user program adds its own
// with one explicit call before parsing its flags, and every train flag, log and `compare` then
// works for it unchanged:
//
//   dsc::register_model("mobilenet", "MobileNet-style CNN (inverted residual blocks)",
//                       [](const dsc::ModelSpec& s) { return make_mobilenet(s); });
//   return dsc::train_main(argc, argv);
//
// A factory builds the model for the data set's images and classes, initialised from spec.seed
// (the same seed, the same weights). Tested in tests/train/test_model_registry.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace dsc {

struct ModelSpec {
  uint64_t seed = 0;
  int in_channels = 3;  // images [N, in_channels, image, image]
  int image = 32;
  int classes = 10;
};

using ModelFactory = std::function<std::shared_ptr<Module>(const ModelSpec&)>;

// Adds a model. Throws dsc::Error for an empty name, a name with spaces, a name already
// registered, or an empty factory.
void register_model(const std::string& name, const std::string& description,
                    ModelFactory factory);
bool model_registered(const std::string& name);
// Builds a registered model; an unknown name is an error listing the registered ones.
std::shared_ptr<Module> make_model(const std::string& name, const ModelSpec& spec);
// Registered names, sorted, each with its description.
std::vector<std::pair<std::string, std::string>> registered_models();

}  // namespace dsc
