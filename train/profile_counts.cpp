// The work of a training step's rows (see profile_counts.h for every formula). Convolutions and
// the fully connected layer go through the seed's model (apps/lib/intensity.h); tested in
// tests/train/test_profile.cpp.
#include "train/profile_counts.h"

#include "apps/lib/intensity.h"
#include "core/error.h"
#include "layers/layers.h"

namespace dsc {
namespace {

int64_t elems(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

WorkCounts from_kind(const intensity::KindCounts& k, bool backward) {
  const int64_t passes = backward ? 2 : 1;  // backward: data gradient + weight gradient
  return {passes * k.macs, passes * k.flops, passes * k.memory_bytes, true};
}

// A stride-1 convolution [B, C, H, W] -> [B, K, Ho, Wo] with an M x M kernel: its padding per
// side follows from the shapes (Ho = H + 2 p - M + 1).
intensity::Analysis conv_analysis(const Shape& in, const Shape& out, int64_t kernel, bool bias,
                                  int elem_bytes) {
  DSC_CHECK(in.size() == 4 && out.size() == 4, "profile: a convolution's shapes ",
            shape_str(in), " -> ", shape_str(out), " are not NCHW");
  intensity::ConvProblem p;
  p.kernel_h = p.kernel_w = kernel;
  p.batch = in[0];
  p.in_channels = in[1];
  p.out_channels = out[1];
  p.height = in[2];
  p.width = in[3];
  p.padding = std::to_string((out[2] - in[2] + kernel - 1) / 2);
  p.dtype = elem_bytes == 2 ? "fp16" : "fp32";
  p.bias = bias;
  return intensity::analyze(p);
}

}  // namespace

WorkCounts layer_counts(const Module& layer, const Shape& in, const Shape& out, int elem_bytes,
                        bool backward) {
  const int64_t n = elems(in), e = elem_bytes;
  if (auto* c = dynamic_cast<const Conv2d*>(&layer)) {
    return from_kind(conv_analysis(in, out, c->weight.shape()[2], c->bias.defined(), elem_bytes)
                         .normal,
                     backward);
  }
  if (auto* d = dynamic_cast<const DepSepConv2d*>(&layer)) {
    return from_kind(conv_analysis(in, out, d->depthwise->weight.shape()[2],
                                   d->pointwise->bias.defined(), elem_bytes)
                         .depsep_fused,
                     backward);
  }
  if (auto* l = dynamic_cast<const Linear*>(&layer)) {
    return from_kind(conv_analysis({in[0], in[1], 1, 1}, {out[0], out[1], 1, 1}, 1,
                                   l->bias.defined(), elem_bytes)
                         .normal,
                     backward);
  }
  if (dynamic_cast<const MaxPool2d*>(&layer)) {
    const int64_t m = elems(out), window = in[2] / out[2] * (in[3] / out[3]);
    return backward ? WorkCounts{0, 0, (m + n) * e} : WorkCounts{0, m * window, (n + m) * e};
  }
  if (auto* bn = dynamic_cast<const BatchNorm2d*>(&layer)) {
    const int64_t c = bn->gamma.numel();
    return backward ? WorkCounts{0, 7 * n, (3 * n + 4 * c) * e}
                    : WorkCounts{0, 5 * n, (2 * n + 4 * c) * e};
  }
  if (dynamic_cast<const ReLU*>(&layer)) {
    return backward ? WorkCounts{0, n, 3 * n * e} : WorkCounts{0, n, 2 * n * e};
  }
  if (dynamic_cast<const Flatten*>(&layer)) return {};
  return {0, 0, 0, false};
}

WorkCounts loss_counts(int64_t batch, int64_t classes, int elem_bytes, bool backward) {
  const int64_t logits = batch * classes;
  return backward ? WorkCounts{0, 3 * logits, 2 * logits * elem_bytes + 4 * batch}
                  : WorkCounts{0, 4 * logits, logits * elem_bytes + 4 * batch + 4};
}

WorkCounts step_row_counts(const std::string& row, const StepShape& s) {
  const int64_t p = s.params;
  if (row == "data copy") return {0, 0, 2 * (4 * s.image_elems + 4 * s.batch)};
  if (row == "input cast") return {0, 0, 6 * s.image_elems};
  if (row == "zero grad") return {0, 0, 4 * p};
  if (row == "param cast") return {0, 0, 6 * p};
  if (row == "finite check" || row == "loss-scale check") return {0, p, 4 * p};
  if (row == "optimizer") return s.optimizer == "sgd" ? WorkCounts{0, 4 * p, 20 * p}
                                                      : WorkCounts{0, 12 * p, 28 * p};
  if (row == "tally") {
    return {0, s.batch * s.classes, s.batch * s.classes * s.elem_bytes + 4 * s.batch};
  }
  return {0, 0, 0, false};
}

}  // namespace dsc
