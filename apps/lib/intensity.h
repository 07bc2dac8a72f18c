// The seed article's arithmetic-intensity model of one convolution layer, normal vs depthwise-
// separable (DepSep = depthwise MxN without bias, then pointwise 1x1), and a roofline bound from
// device ceilings. Pure functions on plain structs, standard library only, so `intensity` prints
// them and `bench layer` can turn a measured rate into "% of roofline".
//
// Symbols (one image): M x N kernel, C input and K output channels, H x W input, Ho x Wo output
// (Ho = H + pad_total_h - M + 1; "same" padding keeps Ho = H as in the article's table), B images.
//
//                     normal                       DepSep
//   parameters        M N C K          (+K bias)   M N C + C K         (+K pointwise bias)
//   multiply-adds     M N C K Ho Wo                (M N C + C K) Ho Wo
//   activations       C H W + K Ho Wo              C H W + K Ho Wo     (fused: ideal)
//                                                  C H W + 2 C Ho Wo + K Ho Wo (separate kernels:
//                                                  the depthwise output is written and read back,
//                                                  H W (3C + K) when Ho = H)
//   memory (ideal)    parameters + B activations (weights read once per batch)
//
// Two conventions are kept side by side:
//   article:   a multiply-add is ONE "FLOP", intensity = multiply-adds / memory ELEMENTS;
//   corrected: 2 FLOPs per multiply-add (+1 per bias add), intensity = FLOPs / memory BYTES.
// At fp16 both intensities are the same number (2 FLOPs per MAC over 2 bytes per element).
//
// Tested in tests/apps/test_intensity.cpp against the article's printed table (M=N=3, C=K=128,
// H=W=224, fp16: 147k / 18k, 7.4 / 0.88 GFLOPs, 26.0 / 25.7 MB, 569.5 / 68.4) and hand-counted
// values for an odd-sized case.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsc::intensity {

// What the user asks about. Sizes are signed so that bad input can be reported, not wrapped.
struct ConvProblem {
  int64_t kernel_h = 3;          // M (--kernel-h, -M)
  int64_t kernel_w = 3;          // N (--kernel-w, -N)
  int64_t in_channels = 128;     // C (--in-channels, -C)
  int64_t out_channels = 128;    // K (--out-channels, -K)
  int64_t height = 224;          // H (--height, -H)
  int64_t width = 224;           // W (--width, -W)
  int64_t batch = 1;             // B (--batch, -b)
  std::string dtype = "fp16";    // fp16 | bf16 | fp32 (--dtype)
  std::string padding = "same";  // same | valid | P (P pixels each side) (--padding)
  bool bias = false;             // count bias parameters and adds (--bias); the article does not
};

// Every problem with the input, one message each, naming the flag and what was expected.
// Empty when the problem is valid.
std::vector<std::string> validate(const ConvProblem& p);

// Bytes per element of a dtype name; nullopt when unknown.
std::optional<int> dtype_bytes(const std::string& dtype);

// Counts for one kind of layer over the whole batch. `memory_*` is parameters + activations.
struct KindCounts {
  int64_t params = 0;            // weights (+ bias)
  int64_t macs = 0;              // multiply-adds (the article's "FLOPs")
  int64_t flops = 0;             // 2 per multiply-add + 1 per bias add
  int64_t activation_elems = 0;  // activations read + written
  int64_t memory_elems = 0;      // params + activation_elems
  int64_t memory_bytes = 0;      // memory_elems * bytes per element
  double article_intensity = 0;  // macs / memory_elems
  double intensity = 0;          // flops / memory_bytes (FLOP per byte)
};

struct Analysis {
  ConvProblem problem;
  int64_t out_h = 0, out_w = 0;  // output spatial size
  int bytes_per_elem = 0;
  KindCounts normal;
  KindCounts depsep_fused;     // the article's ideal DepSep: depthwise output stays on chip
  KindCounts depsep_separate;  // depthwise output written to memory and read back
};

// Throws std::invalid_argument with the first message of validate() when the problem is invalid.
Analysis analyze(const ConvProblem& p);

// The article's printed strings: parameters to the nearest thousand ("147k"), multiply-adds in
// 10^9 to two significant digits ("7.4", "0.88"), memory in MB = 10^6 bytes to one decimal
// ("26.0"), intensity (per element) to one decimal ("569.5"). For the fused (ideal) DepSep.
struct ArticleStrings {
  std::string params, gflops, mb, intensity;
};
ArticleStrings article_strings(const KindCounts& k);

// Device ceilings in the corrected convention (FLOP/s counting 2 per multiply-add; bytes read +
// written per second), as `bench device` saves them.
struct Ceilings {
  double peak_flops = 0;
  double bandwidth_bytes_per_s = 0;
};

enum class Bound { kCompute, kMemory };
const char* bound_name(Bound b);  // "compute" | "memory"

struct RooflinePoint {
  double compute_s = 0;     // flops / peak, whole batch
  double memory_s = 0;      // bytes / bandwidth, whole batch
  double batch_s = 0;       // max of the two: the lower bound on the batch's time
  double per_image_s = 0;   // batch_s / B
  double images_per_s = 0;  // B / batch_s: the conv/sec upper bound
  Bound bound = Bound::kCompute;
};

struct Roofline {
  Ceilings ceilings;
  double ridge_intensity = 0;  // peak / bandwidth, FLOP per byte
  RooflinePoint normal, depsep_separate, depsep_fused;
};

RooflinePoint roofline_point(const KindCounts& k, int64_t batch, const Ceilings& c);
// Throws std::invalid_argument when a ceiling is not positive.
Roofline roofline(const Analysis& a, const Ceilings& c);

// A measured rate (images, i.e. convolutions, per second) put next to the model, the article's
// way ("30.3 TFLOPS" = T multiply-adds/s; "Est. Mem. Throughput" = conv/s x bytes per image) and
// the corrected way (FLOP/s, % of the roofline bound).
struct Achieved {
  double images_per_s = 0;
  double article_tflops = 0;  // 10^12 multiply-adds per second
  double tflops = 0;          // 10^12 FLOP per second (2 per multiply-add)
  double mem_gbs = 0;         // 10^9 bytes/s at this kind's modelled traffic per image
  std::optional<double> percent_of_roofline;  // set when a roofline point is given
};
Achieved achieved(const KindCounts& k, int64_t batch, double images_per_s,
                  const std::optional<RooflinePoint>& bound = std::nullopt);

// The human-readable report `intensity` prints: aligned tables, the article's convention first.
// measured_* are conv/sec rates to compare against the model (section left out when absent).
std::string format_text(const Analysis& a, const std::optional<Roofline>& r,
                        std::optional<double> measured_normal = std::nullopt,
                        std::optional<double> measured_depsep = std::nullopt);

// Formatting helpers shared with other reports.
std::string with_commas(int64_t v);             // 147456 -> "147,456"
std::string fixed(double v, int decimals);      // fixed(569.46, 1) -> "569.5"
std::string significant(double v, int digits);  // significant(0.87988, 2) -> "0.88"

}  // namespace dsc::intensity
