// A MobileNet-style CIFAR-10 classifier (MobileNetV2's inverted residual blocks with MobileNetV3's
// hard_swish), written as a user of the installed dsc would write it: layers composed of dsc's
// layers, one new op (hard_swish.h), and dsc::Sequential. Shapes NCHW; 32x32 RGB in, 10 logits out.
//
//   stem      3x3 conv 3 -> 16, BN, hard_swish                               32x32
//   blocks    InvertedResidual (expansion t, out channels c, repeats n, first stride s):
//             (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2)   -> 4x4
//   head      1x1 conv 64 -> 128, BN, hard_swish; global average pooling; Linear(128 -> 10)
//
// The head's pooling is dsc's GlobalAvgPool2d. Tested in test_mobilenet.cpp (shapes, parameter
// count, gradients, the registered model, a mixed-precision step).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace mobilenet {

// x -> 1x1 expand (in -> in * expansion; skipped when expansion is 1), BN, hard_swish ->
// 3x3 depthwise with `stride`, BN, hard_swish -> 1x1 project (-> out), BN; plus x when the
// shapes allow it (stride 1, in == out). No biases: BatchNorm follows every convolution.
class InvertedResidual : public dsc::Module {
 public:
  InvertedResidual(int in, int out, int expansion, int stride, std::mt19937_64& rng);
  dsc::Tensor forward(const dsc::Tensor& x) override;
  std::string name() const override { return "InvertedResidual"; }
  std::string describe() const override;

 private:
  int in_, out_, expansion_, stride_;
  std::shared_ptr<dsc::Sequential> body_;
};

struct MobileNetOptions {
  int in_channels = 3;
  int classes = 10;
  int stem = 16;   // stem channels
  int head = 128;  // channels before pooling
  struct Stage {
    int expansion, channels, repeats, stride;
  };
  std::vector<Stage> stages = {{1, 16, 1, 1}, {4, 24, 2, 2}, {4, 32, 2, 2}, {4, 64, 2, 2}};
};

// The model, initialised from `seed` (He-uniform convolutions, as dsc's layers do).
std::shared_ptr<dsc::Sequential> make_mobilenet(uint64_t seed, const MobileNetOptions& options = {});

// Registers the model as "mobilenet" with dsc's model registry (layers/model_registry.h), built
// for the data set's channels and classes; once per process (a second call does nothing).
void register_mobilenet();

}  // namespace mobilenet
