// The two benchmark models of the DepSep experiment (the "seed" runs), exactly: 4 x [3x3 conv,
// 128 filters, 'same' padding, bias, ReLU] at 32x32 from 3 channels, MaxPool 4x4 -> 8x8x128,
// BatchNorm (momentum 0.99, eps 1e-3), Flatten (8192), Linear(10). "depsep" uses DepSepConv2d for
// all four convolutions. He-uniform initialisation as Keras does it. Parameter counts (Keras'):
// 528,778 / 135,973.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace dsc {

enum class ModelKind { Normal, DepSep };

// "normal" or "depsep"; throws with the accepted names otherwise.
ModelKind parse_model_kind(const std::string& name);
const char* model_kind_name(ModelKind kind);

struct SeedCnnOptions {
  int channels = 128;     // filters per convolution
  int convs = 4;          // number of conv blocks
  int image = 32;         // input height = width
  int in_channels = 3;
  int classes = 10;
  int pool = 4;
};

std::shared_ptr<Sequential> make_seed_cnn(ModelKind kind, uint64_t seed,
                                          const SeedCnnOptions& opt = {});

// A Keras-style summary: one row per layer with its output shape and parameter count, then
// "Total params", "Trainable params" and "Non-trainable params".
std::string summary(const Sequential& model, const Shape& input_shape);

}  // namespace dsc
