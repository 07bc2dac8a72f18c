// Parameter, multiply-add and memory-traffic counts of a normal vs a depthwise-separable
// convolution, the seed article's arithmetic intensity and a roofline bound (see intensity.h for
// the formulas). Tested in tests/apps/test_intensity.cpp against the article's printed numbers
// and hand-counted values for an odd-sized layer.
#include "apps/lib/intensity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace dsc::intensity {

namespace {

// Largest count we accept, so every product below fits in int64_t with room to spare.
constexpr long double kMaxCount = 4.0e18L;

// Total padding added to one dimension, or nullopt for an unparseable --padding.
std::optional<int64_t> total_padding(const std::string& padding, int64_t kernel) {
  if (padding == "same") return kernel - 1;
  if (padding == "valid") return 0;
  if (padding.empty() || padding.size() > 9) return std::nullopt;
  int64_t p = 0;
  for (char ch : padding) {
    if (ch < '0' || ch > '9') return std::nullopt;
    p = p * 10 + (ch - '0');
  }
  return 2 * p;
}

struct Flag {
  const char* name;
  int64_t value;
};

std::string padding_words(const std::string& padding) {
  if (padding == "same" || padding == "valid") return "--padding " + padding;
  return "--padding " + padding + " on each side";
}

double ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

std::optional<int> dtype_bytes(const std::string& dtype) {
  if (dtype == "fp16" || dtype == "bf16") return 2;
  if (dtype == "fp32") return 4;
  return std::nullopt;
}

std::vector<std::string> validate(const ConvProblem& p) {
  std::vector<std::string> errors;
  const Flag sizes[] = {{"--kernel-h (-M)", p.kernel_h},
                        {"--kernel-w (-N)", p.kernel_w},
                        {"--in-channels (-C)", p.in_channels},
                        {"--out-channels (-K)", p.out_channels},
                        {"--height (-H)", p.height},
                        {"--width (-W)", p.width},
                        {"--batch (-b)", p.batch}};
  bool sizes_ok = true;
  for (const Flag& f : sizes) {
    if (f.value <= 0) {
      errors.push_back(std::string(f.name) + " must be a positive integer, got " +
                       std::to_string(f.value));
      sizes_ok = false;
    }
  }
  if (!dtype_bytes(p.dtype)) {
    errors.push_back("--dtype must be one of fp16, bf16, fp32, got '" + p.dtype + "'");
  }
  const auto pad_h = total_padding(p.padding, p.kernel_h);
  const auto pad_w = total_padding(p.padding, p.kernel_w);
  if (!pad_h || !pad_w) {
    errors.push_back("--padding must be 'same', 'valid' or pixels per side (0, 1, ...), got '" +
                     p.padding + "'");
  }
  if (!sizes_ok || !pad_h || !pad_w) return errors;

  const int64_t padded_h = p.height + *pad_h, padded_w = p.width + *pad_w;
  if (p.kernel_h > padded_h) {
    errors.push_back("--kernel-h (-M) = " + std::to_string(p.kernel_h) +
                     " is larger than the padded image height " + std::to_string(padded_h) +
                     " (--height " + std::to_string(p.height) + ", " + padding_words(p.padding) +
                     "); expected a kernel of at most " + std::to_string(padded_h));
  }
  if (p.kernel_w > padded_w) {
    errors.push_back("--kernel-w (-N) = " + std::to_string(p.kernel_w) +
                     " is larger than the padded image width " + std::to_string(padded_w) +
                     " (--width " + std::to_string(p.width) + ", " + padding_words(p.padding) +
                     "); expected a kernel of at most " + std::to_string(padded_w));
  }
  if (!errors.empty()) return errors;

  // Guard the int64 arithmetic: the largest counts are the normal multiply-adds and the
  // separate DepSep activations over the batch.
  const long double out_hw = static_cast<long double>(padded_h - p.kernel_h + 1) *
                             static_cast<long double>(padded_w - p.kernel_w + 1);
  const long double in_hw = static_cast<long double>(p.height) * p.width;
  const long double b = p.batch, c = p.in_channels, k = p.out_channels;
  const long double macs = b * p.kernel_h * p.kernel_w * c * k * out_hw;
  const long double acts = b * (c * in_hw + (2 * c + k) * out_hw);
  const long double params = p.kernel_h * p.kernel_w * c * k + k;
  if (2 * macs + b * k * out_hw > kMaxCount || 4 * (params + acts) > kMaxCount) {
    errors.push_back(
        "sizes too large: --batch x --kernel-h x --kernel-w x --in-channels x "
        "--out-channels x output pixels must stay below 2e18 multiply-adds; "
        "reduce --batch or the sizes");
  }
  return errors;
}

Analysis analyze(const ConvProblem& p) {
  const auto errors = validate(p);
  if (!errors.empty()) throw std::invalid_argument(errors.front());

  Analysis a;
  a.problem = p;
  a.bytes_per_elem = *dtype_bytes(p.dtype);
  a.out_h = p.height + *total_padding(p.padding, p.kernel_h) - p.kernel_h + 1;
  a.out_w = p.width + *total_padding(p.padding, p.kernel_w) - p.kernel_w + 1;

  const int64_t M = p.kernel_h, N = p.kernel_w, C = p.in_channels, K = p.out_channels;
  const int64_t B = p.batch, in_hw = p.height * p.width, out_hw = a.out_h * a.out_w;
  const int64_t bias_params = p.bias ? K : 0;
  const int64_t bias_adds = p.bias ? B * K * out_hw : 0;
  const int64_t bytes = a.bytes_per_elem;

  auto finish = [&](KindCounts& k) {
    k.flops = 2 * k.macs + bias_adds;
    k.memory_elems = k.params + k.activation_elems;
    k.memory_bytes = k.memory_elems * bytes;
    k.article_intensity = ratio(k.macs, k.memory_elems);
    k.intensity = ratio(k.flops, k.memory_bytes);
  };

  a.normal.params = M * N * C * K + bias_params;
  a.normal.macs = B * M * N * C * K * out_hw;
  a.normal.activation_elems = B * (C * in_hw + K * out_hw);
  finish(a.normal);

  a.depsep_fused.params = M * N * C + C * K + bias_params;
  a.depsep_fused.macs = B * (M * N * C + C * K) * out_hw;
  a.depsep_fused.activation_elems = B * (C * in_hw + K * out_hw);
  finish(a.depsep_fused);

  a.depsep_separate = a.depsep_fused;
  // The depthwise output (C x Ho x Wo) is written by one kernel and read by the next.
  a.depsep_separate.activation_elems = B * (C * in_hw + 2 * C * out_hw + K * out_hw);
  finish(a.depsep_separate);
  return a;
}

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", std::max(decimals, 0), v);
  return buf;
}

std::string significant(double v, int digits) {
  if (v == 0 || !std::isfinite(v)) return fixed(v, 0);
  const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  int decimals = std::max(digits - 1 - magnitude, 0);
  std::string s = fixed(v, decimals);
  // Rounding may carry into the next power of ten (0.0999 -> "0.100"): drop one decimal.
  if (decimals > 0 && std::fabs(std::stod(s)) >= std::pow(10.0, magnitude + 1)) {
    s = fixed(v, decimals - 1);
  }
  return s;
}

ArticleStrings article_strings(const KindCounts& k) {
  ArticleStrings s;
  if (k.params < 1000) {
    s.params = std::to_string(k.params);
  } else if (k.params < 999500) {
    s.params = fixed(static_cast<double>(k.params) / 1e3, 0) + "k";
  } else {
    s.params = significant(static_cast<double>(k.params) / 1e6, 3) + "M";
  }
  s.gflops = significant(static_cast<double>(k.macs) / 1e9, 2);
  s.mb = fixed(static_cast<double>(k.memory_bytes) / 1e6, 1);
  s.intensity = fixed(k.article_intensity, 1);
  return s;
}

const char* bound_name(Bound b) { return b == Bound::kCompute ? "compute" : "memory"; }

RooflinePoint roofline_point(const KindCounts& k, int64_t batch, const Ceilings& c) {
  if (!(c.peak_flops > 0) || !(c.bandwidth_bytes_per_s > 0) || batch <= 0) {
    throw std::invalid_argument("roofline needs a positive peak FLOP/s, bandwidth and batch");
  }
  RooflinePoint r;
  r.compute_s = static_cast<double>(k.flops) / c.peak_flops;
  r.memory_s = static_cast<double>(k.memory_bytes) / c.bandwidth_bytes_per_s;
  r.bound = r.compute_s >= r.memory_s ? Bound::kCompute : Bound::kMemory;
  r.batch_s = std::max(r.compute_s, r.memory_s);
  r.per_image_s = r.batch_s / static_cast<double>(batch);
  r.images_per_s = static_cast<double>(batch) / r.batch_s;
  return r;
}

Roofline roofline(const Analysis& a, const Ceilings& c) {
  Roofline r;
  r.ceilings = c;
  r.normal = roofline_point(a.normal, a.problem.batch, c);
  r.depsep_separate = roofline_point(a.depsep_separate, a.problem.batch, c);
  r.depsep_fused = roofline_point(a.depsep_fused, a.problem.batch, c);
  r.ridge_intensity = c.peak_flops / c.bandwidth_bytes_per_s;
  return r;
}

Achieved achieved(const KindCounts& k, int64_t batch, double images_per_s,
                  const std::optional<RooflinePoint>& bound) {
  Achieved m;
  const double per_image = images_per_s / static_cast<double>(batch);
  m.images_per_s = images_per_s;
  m.article_tflops = static_cast<double>(k.macs) * per_image / 1e12;
  m.tflops = static_cast<double>(k.flops) * per_image / 1e12;
  m.mem_gbs = static_cast<double>(k.memory_bytes) * per_image / 1e9;
  if (bound) m.percent_of_roofline = 100.0 * images_per_s / bound->images_per_s;
  return m;
}

namespace {

// Rows of cells; the first column left-aligned, the others right-aligned, two spaces apart.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      line += i == 0 ? row[i] + pad : "  " + pad + row[i];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string seconds(double s) {
  if (s < 1e-6) return significant(s * 1e9, 3) + " ns";
  if (s < 1e-3) return significant(s * 1e6, 3) + " us";
  if (s < 1.0) return significant(s * 1e3, 3) + " ms";
  return significant(s, 3) + " s";
}

std::string rate(double v) { return with_commas(static_cast<int64_t>(std::llround(v))); }

}  // namespace

std::string format_text(const Analysis& a, const std::optional<Roofline>& r,
                        std::optional<double> measured_normal,
                        std::optional<double> measured_depsep) {
  const ConvProblem& p = a.problem;
  std::string out;
  out += "Convolution " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) +
         ", C=" + std::to_string(p.in_channels) + " -> K=" + std::to_string(p.out_channels) + ", " +
         std::to_string(p.height) + "x" + std::to_string(p.width) + " -> " +
         std::to_string(a.out_h) + "x" + std::to_string(a.out_w) + " (padding " + p.padding +
         "), batch " + std::to_string(p.batch) + ", " + p.dtype + " (" +
         std::to_string(a.bytes_per_elem) + " bytes/element), bias " +
         (p.bias ? "counted" : "not counted") + "\n\n";

  const ArticleStrings an = article_strings(a.normal), ad = article_strings(a.depsep_fused);
  out += "Article's convention (1 FLOP per multiply-add, intensity per element, ideal traffic)\n";
  out += table({{"", "normal", "depsep"},
                {"parameters", an.params, ad.params},
                {"GFLOPs (= 10^9 multiply-adds)", an.gflops, ad.gflops},
                {"memory accesses (MB = 10^6 bytes)", an.mb, ad.mb},
                {"arithmetic intensity (MAC/element)", an.intensity, ad.intensity}});

  const KindCounts* kinds[] = {&a.normal, &a.depsep_fused, &a.depsep_separate};
  auto row = [&](const std::string& label, auto cell) {
    std::vector<std::string> r{label};
    for (const KindCounts* k : kinds) r.push_back(cell(*k));
    return r;
  };
  out += "\nExact counts and the corrected model (2 FLOPs per multiply-add, intensity per byte)\n";
  out += table({
      {"", "normal", "depsep fused", "depsep separate"},
      row("parameters", [](const KindCounts& k) { return with_commas(k.params); }),
      row("multiply-adds", [](const KindCounts& k) { return with_commas(k.macs); }),
      row("FLOPs", [](const KindCounts& k) { return with_commas(k.flops); }),
      row("activations read+written (elements)",
          [](const KindCounts& k) { return with_commas(k.activation_elems); }),
      row("memory accesses (elements)",
          [](const KindCounts& k) { return with_commas(k.memory_elems); }),
      row("memory accesses (bytes)",
          [](const KindCounts& k) { return with_commas(k.memory_bytes); }),
      row("intensity, article (MAC/element)",
          [](const KindCounts& k) { return fixed(k.article_intensity, 1); }),
      row("intensity, corrected (FLOP/byte)",
          [](const KindCounts& k) { return fixed(k.intensity, 1); }),
  });
  out += "(depsep fused keeps the depthwise output on chip; separate writes and reads it back)\n";

  if (r) {
    const RooflinePoint* pts[] = {&r->normal, &r->depsep_fused, &r->depsep_separate};
    auto rrow = [&](const std::string& label, auto cell) {
      std::vector<std::string> v{label};
      for (const RooflinePoint* pt : pts) v.push_back(cell(*pt));
      return v;
    };
    const double b = static_cast<double>(p.batch);
    out += "\nRoofline: peak " + significant(r->ceilings.peak_flops / 1e12, 4) +
           " TFLOP/s, bandwidth " + significant(r->ceilings.bandwidth_bytes_per_s / 1e9, 4) +
           " GB/s, ridge " + fixed(r->ridge_intensity, 1) + " FLOP/byte\n";
    out += table({
        {"", "normal", "depsep fused", "depsep separate"},
        rrow("compute time per image",
             [b](const RooflinePoint& x) { return seconds(x.compute_s / b); }),
        rrow("memory time per image",
             [b](const RooflinePoint& x) { return seconds(x.memory_s / b); }),
        rrow("lower bound per image",
             [](const RooflinePoint& x) { return seconds(x.per_image_s); }),
        rrow("conv/sec upper bound", [](const RooflinePoint& x) { return rate(x.images_per_s); }),
        rrow("bound by", [](const RooflinePoint& x) { return std::string(bound_name(x.bound)); }),
    });
  } else {
    out +=
        "\nNo roofline: pass --peak-tflops T and --bandwidth-gbs G, or --ceilings FILE (the\n"
        "JSON that `bench device` saves), to print the time and conv/sec bounds.\n";
  }

  if (measured_normal || measured_depsep) {
    const std::optional<double> rates[] = {measured_normal, measured_depsep, measured_depsep};
    std::optional<Achieved> m[3];
    for (int i = 0; i < 3; ++i) {
      if (!rates[i]) continue;
      std::optional<RooflinePoint> pt;
      if (r) pt = i == 0 ? r->normal : (i == 1 ? r->depsep_fused : r->depsep_separate);
      m[i] = achieved(*kinds[i], p.batch, *rates[i], pt);
    }
    auto mrow = [&](const std::string& label, auto cell) {
      std::vector<std::string> v{label};
      for (const auto& x : m) v.push_back(x ? cell(*x) : std::string("-"));
      return v;
    };
    out += "\nMeasured rates against the model\n";
    std::vector<std::vector<std::string>> rows = {
        {"", "normal", "depsep fused", "depsep separate"},
        mrow("conv/sec", [](const Achieved& x) { return rate(x.images_per_s); }),
        mrow("article \"TFLOPS\" (10^12 MAC/s)",
             [](const Achieved& x) { return significant(x.article_tflops, 3); }),
        mrow("TFLOP/s (2 per MAC)", [](const Achieved& x) { return significant(x.tflops, 3); }),
        mrow("memory throughput at modelled traffic (GB/s)",
             [](const Achieved& x) { return fixed(x.mem_gbs, 1); })};
    if (r) {
      rows.push_back(mrow("% of roofline bound", [](const Achieved& x) {
        return fixed(*x.percent_of_roofline, 1) + "%";
      }));
    }
    out += table(rows);
  }
  return out;
}

}  // namespace dsc::intensity
