// The work of each row of a training-step profile (train/profile.h): multiply-adds, FLOPs and the
// minimal bytes moved, over the whole batch, for the forward and the backward of each layer and
// for the step's other parts. The convolutions and the fully connected layer are counted by the
// seed's model in apps/lib/intensity.h (a Linear F -> O is a 1x1 convolution with C = F, K = O on
// a 1x1 image); the rest are written here. e is the bytes per element of the activations (4 for
// f32, 2 for f16), N the elements of the layer's input, B the batch, P the trained parameters.
//
//   row                   multiply-adds        FLOPs                    minimal bytes
//   Conv2d fwd            M N C K Ho Wo B      2 MACs + B K Ho Wo       intensity.h `normal`
//   DepSepConv2d fwd      (MNC + CK) Ho Wo B   2 MACs + B K Ho Wo       intensity.h `depsep_fused`
//   Linear fwd            B F O                2 MACs + B O             (F O + O + B F + B O) e
//   conv / linear bwd     2x forward: the data gradient and the weight gradient each redo the
//                         forward's multiply-adds over as many elements (as `bench layer` counts)
//   MaxPool2d k x k fwd   0                    B C Ho Wo k k compares   (N + B C Ho Wo) e
//             bwd         0                    0                        (B C Ho Wo + N) e
//   BatchNorm2d fwd       0                    5 N (sums 3, affine 2)   (2 N + 4 C) e
//               bwd       0                    7 N                      (3 N + 4 C) e
//   ReLU fwd / bwd        0                    N / N                    2 N e / 3 N e
//   Flatten               0                    0                        0 (a view)
//   loss fwd (softmax     0                    4 B K                    K B e + 4 B + 4
//     cross-entropy, K classes)
//   loss bwd              0                    3 B K                    2 K B e + 4 B
//   data copy             0                    0                        2 (N_images 4 + 4 B)
//   input cast (f16)      0                    0                        6 N_images
//   zero grad             0                    0                        4 P
//   param cast (f16)      0                    0                        6 P
//   finite / loss-scale   0                    P                        4 P
//     check
//   optimizer: Adam       0                    12 P                     28 P (read p g m v, write
//                                                                       p m v, f32)
//              SGD        0                    4 P                      20 P
//   tally                 0                    B K                      K B e + 4 B
// Convolutions' fused ReLU is free in this model (it touches nothing the minimal traffic does not
// already count). A layer of another kind counts as zero with `known` false.
// Tested in tests/train/test_profile.cpp against these formulas written out by hand.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "layers/module.h"

namespace dsc {

struct WorkCounts {
  int64_t macs = 0, flops = 0, bytes = 0;
  bool known = true;
};

// One layer's forward (backward = false) or backward over the whole batch, from its input and
// output shapes and the bytes per activation element.
WorkCounts layer_counts(const Module& layer, const Shape& in, const Shape& out, int elem_bytes,
                        bool backward);

// The loss (softmax cross-entropy of logits [B, K]), forward or backward.
WorkCounts loss_counts(int64_t batch, int64_t classes, int elem_bytes, bool backward);

// A step's other rows by name: "data copy" (images of `image_elems` f32 and B i32 labels),
// "input cast", "zero grad", "param cast", "finite check", "loss-scale check", "optimizer" (optimizer "adam"
// or "sgd"), "tally". Unknown names count as zero with `known` false.
struct StepShape {
  int64_t batch = 0, classes = 0, image_elems = 0, params = 0;
  int elem_bytes = 4;
  std::string optimizer = "adam";
};
WorkCounts step_row_counts(const std::string& row, const StepShape& s);

}  // namespace dsc
