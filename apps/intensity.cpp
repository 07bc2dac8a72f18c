// intensity: the seed article's arithmetic-intensity table for one convolution layer, normal vs
// depthwise-separable, in the article's conventions and the corrected ones, plus a roofline bound
// from device ceilings (--peak-tflops/--bandwidth-gbs or a `bench device` JSON file). The math is
// in apps/lib/intensity.{h,cpp} (tested in tests/apps/test_intensity.cpp); this file parses flags
// and prints text or JSON.
#include "apps/lib/intensity.h"

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

namespace {

using dsc::intensity::Analysis;
using dsc::intensity::Ceilings;
using dsc::intensity::KindCounts;
using dsc::intensity::Roofline;
using dsc::intensity::RooflinePoint;
using json = nlohmann::ordered_json;

constexpr int kUsageError = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads {"peak_flops": FLOP/s, "bandwidth_bytes_per_s": B/s, ...} as `bench device` writes it.
Ceilings read_ceilings(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("--ceilings: cannot open '" + path + "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UsageError("--ceilings: '" + path + "' is not valid JSON: " + e.what());
  }
  Ceilings c;
  for (auto [key, dst] : {std::pair{"peak_flops", &c.peak_flops},
                          std::pair{"bandwidth_bytes_per_s", &c.bandwidth_bytes_per_s}}) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) {
      throw UsageError(std::string("--ceilings: '") + path + "' has no numeric key \"" + key +
                       "\" (expected {\"peak_flops\": FLOP/s, \"bandwidth_bytes_per_s\": B/s})");
    }
    *dst = j[key].get<double>();
    if (!(*dst > 0)) {
      throw UsageError(std::string("--ceilings: \"") + key + "\" in '" + path +
                       "' must be positive, got " + j[key].dump());
    }
  }
  return c;
}

json counts_json(const KindCounts& k) {
  return {{"params", k.params},
          {"macs", k.macs},
          {"flops", k.flops},
          {"activation_elems", k.activation_elems},
          {"memory_elems", k.memory_elems},
          {"memory_bytes", k.memory_bytes},
          {"article_intensity", k.article_intensity},
          {"intensity_flop_per_byte", k.intensity}};
}

json point_json(const RooflinePoint& r) {
  return {{"compute_s", r.compute_s},       {"memory_s", r.memory_s},
          {"batch_s", r.batch_s},           {"per_image_s", r.per_image_s},
          {"images_per_s", r.images_per_s}, {"bound", dsc::intensity::bound_name(r.bound)}};
}

json article_json(const KindCounts& k) {
  const auto s = dsc::intensity::article_strings(k);
  return {{"params", s.params}, {"gflops", s.gflops}, {"mb", s.mb}, {"intensity", s.intensity}};
}

json report_json(const Analysis& a, const std::optional<Roofline>& r,
                 std::optional<double> measured_normal, std::optional<double> measured_depsep) {
  const auto& p = a.problem;
  json j;
  j["inputs"] = {{"kernel_h", p.kernel_h},
                 {"kernel_w", p.kernel_w},
                 {"in_channels", p.in_channels},
                 {"out_channels", p.out_channels},
                 {"height", p.height},
                 {"width", p.width},
                 {"out_height", a.out_h},
                 {"out_width", a.out_w},
                 {"batch", p.batch},
                 {"dtype", p.dtype},
                 {"bytes_per_elem", a.bytes_per_elem},
                 {"padding", p.padding},
                 {"bias", p.bias}};
  j["article"] = {{"convention", "1 FLOP per multiply-add, intensity per element, MB = 1e6 B"},
                  {"normal", article_json(a.normal)},
                  {"depsep", article_json(a.depsep_fused)}};
  j["convention"] = "flops: 2 per multiply-add (+1 per bias add); intensity: FLOP per byte";
  j["normal"] = counts_json(a.normal);
  j["depsep_fused"] = counts_json(a.depsep_fused);
  j["depsep_separate"] = counts_json(a.depsep_separate);
  if (r) {
    j["roofline"] = {{"peak_flops", r->ceilings.peak_flops},
                     {"bandwidth_bytes_per_s", r->ceilings.bandwidth_bytes_per_s},
                     {"ridge_intensity", r->ridge_intensity},
                     {"normal", point_json(r->normal)},
                     {"depsep_fused", point_json(r->depsep_fused)},
                     {"depsep_separate", point_json(r->depsep_separate)}};
  } else {
    j["roofline"] = nullptr;
  }
  auto measured = [&](const KindCounts& k, double rate, const RooflinePoint* pt) {
    std::optional<RooflinePoint> bound;
    if (pt) bound = *pt;
    const auto m = dsc::intensity::achieved(k, p.batch, rate, bound);
    json o = {{"images_per_s", m.images_per_s},
              {"article_tflops", m.article_tflops},
              {"tflops", m.tflops},
              {"mem_gbs", m.mem_gbs}};
    o["percent_of_roofline"] = m.percent_of_roofline ? json(*m.percent_of_roofline) : json();
    return o;
  };
  if (measured_normal) {
    j["measured"]["normal"] = measured(a.normal, *measured_normal, r ? &r->normal : nullptr);
  }
  if (measured_depsep) {
    j["measured"]["depsep_fused"] =
        measured(a.depsep_fused, *measured_depsep, r ? &r->depsep_fused : nullptr);
    j["measured"]["depsep_separate"] =
        measured(a.depsep_separate, *measured_depsep, r ? &r->depsep_separate : nullptr);
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  dsc::intensity::ConvProblem p;
  std::optional<double> peak_tflops, bandwidth_gbs, measured_normal, measured_depsep;
  std::string ceilings_path;
  bool as_json = false;

  CLI::App app{
      "Arithmetic intensity of one convolution layer, normal vs depthwise-separable (depthwise "
      "MxN + pointwise 1x1), in the seed article's conventions (1 FLOP per multiply-add, "
      "intensity per element) and corrected ones (2 FLOPs per multiply-add, intensity per byte, "
      "DepSep with and without the depthwise output round trip), with an optional roofline "
      "bound.\nExample: intensity -M 3 -N 3 -C 128 -K 128 -H 224 -W 224 --dtype fp16",
      "intensity"};
  app.add_option("-M,--kernel-h", p.kernel_h, "kernel height M")->capture_default_str();
  app.add_option("-N,--kernel-w", p.kernel_w, "kernel width N")->capture_default_str();
  app.add_option("-C,--in-channels", p.in_channels, "input channels C")->capture_default_str();
  app.add_option("-K,--out-channels", p.out_channels, "output channels K (filters)")
      ->capture_default_str();
  app.add_option("-H,--height", p.height, "input image height H")->capture_default_str();
  app.add_option("-W,--width", p.width, "input image width W")->capture_default_str();
  app.add_option("-b,--batch", p.batch, "images per batch (weights are read once per batch)")
      ->capture_default_str();
  app.add_option("--dtype", p.dtype, "element type: fp16, bf16 (2 bytes) or fp32 (4 bytes)")
      ->capture_default_str();
  app.add_option("--padding", p.padding,
                 "same (output = input size, the article's table), valid, or P pixels per side")
      ->capture_default_str();
  app.add_flag("--bias", p.bias, "count bias parameters (+K) and bias adds (+K Ho Wo FLOPs)");
  app.add_option("--peak-tflops", peak_tflops,
                 "device peak in 10^12 FLOP/s (2 per multiply-add), for the roofline");
  app.add_option("--bandwidth-gbs", bandwidth_gbs,
                 "device memory bandwidth in 10^9 bytes/s (read + written), for the roofline");
  app.add_option("--ceilings", ceilings_path,
                 "JSON file with peak_flops and bandwidth_bytes_per_s (as `bench device` saves "
                 "it); --peak-tflops/--bandwidth-gbs override its values");
  app.add_option("--measured-normal", measured_normal,
                 "a measured normal-conv rate in conv/sec, to compare with the model");
  app.add_option("--measured-depsep", measured_depsep,
                 "a measured DepSep rate in conv/sec, to compare with the model");
  app.add_flag("--json", as_json, "print one JSON object instead of tables");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help, or the parse error
    return rc == 0 ? 0 : kUsageError;
  }

  try {
    const auto errors = dsc::intensity::validate(p);
    if (!errors.empty()) {
      for (const auto& e : errors) std::cerr << "intensity: error: " << e << "\n";
      std::cerr << "Run with --help for more information.\n";
      return kUsageError;
    }
    for (auto [flag, value] :
         {std::pair{"--peak-tflops", peak_tflops}, std::pair{"--bandwidth-gbs", bandwidth_gbs},
          std::pair{"--measured-normal", measured_normal},
          std::pair{"--measured-depsep", measured_depsep}}) {
      if (value && !(*value > 0)) {
        std::ostringstream got;
        got << *value;
        throw UsageError(std::string(flag) + " must be a positive number, got " + got.str());
      }
    }

    std::optional<Ceilings> ceilings;
    if (!ceilings_path.empty()) ceilings = read_ceilings(ceilings_path);
    if (peak_tflops || bandwidth_gbs) {
      if (!ceilings && !(peak_tflops && bandwidth_gbs)) {
        throw UsageError(std::string("the roofline needs both --peak-tflops and --bandwidth-gbs "
                                     "(or --ceilings FILE); missing ") +
                         (peak_tflops ? "--bandwidth-gbs" : "--peak-tflops"));
      }
      if (!ceilings) ceilings = Ceilings{};
      if (peak_tflops) ceilings->peak_flops = *peak_tflops * 1e12;
      if (bandwidth_gbs) ceilings->bandwidth_bytes_per_s = *bandwidth_gbs * 1e9;
    }

    const Analysis a = dsc::intensity::analyze(p);
    std::optional<Roofline> r;
    if (ceilings) r = dsc::intensity::roofline(a, *ceilings);

    if (as_json) {
      std::cout << report_json(a, r, measured_normal, measured_depsep).dump(2) << "\n";
    } else {
      std::cout << dsc::intensity::format_text(a, r, measured_normal, measured_depsep);
    }
  } catch (const UsageError& e) {
    std::cerr << "intensity: error: " << e.what() << "\nRun with --help for more information.\n";
    return kUsageError;
  } catch (const std::exception& e) {
    std::cerr << "intensity: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
