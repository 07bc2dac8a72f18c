// Tests of the arithmetic-intensity model (apps/lib/intensity.h): the seed article's printed table
// reproduced character for character, hand-counted values for an odd-sized layer, the roofline's
// binding side against the brief's H100 bounds, rejected inputs, and the `intensity` program's
// exit codes and messages when it has been built.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "apps/lib/intensity.h"

namespace di = dsc::intensity;

namespace {

di::ConvProblem article_problem() {
  di::ConvProblem p;  // the defaults are the article's layer: M=N=3, C=K=128, H=W=224, fp16
  p.kernel_h = p.kernel_w = 3;
  p.in_channels = p.out_channels = 128;
  p.height = p.width = 224;
  p.batch = 1;
  p.dtype = "fp16";
  p.padding = "same";
  return p;
}

// M=N=5, C=3, K=7, H=W=13, fp32: small and odd so that no two factors hide each other.
di::ConvProblem odd_problem() {
  di::ConvProblem p;
  p.kernel_h = p.kernel_w = 5;
  p.in_channels = 3;
  p.out_channels = 7;
  p.height = p.width = 13;
  p.batch = 1;
  p.dtype = "fp32";
  return p;
}

bool mentions(const std::vector<std::string>& errors, const std::string& what) {
  for (const auto& e : errors) {
    if (e.find(what) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("intensity: the article's table, exactly as printed") {
  const di::Analysis a = di::analyze(article_problem());
  // Exact counts behind the printed strings.
  CHECK(a.out_h == 224);
  CHECK(a.normal.params == 147456);
  CHECK(a.depsep_fused.params == 17536);
  CHECK(a.normal.macs == 7398752256);
  CHECK(a.depsep_fused.macs == 879886336);
  CHECK(a.normal.activation_elems == 12845056);  // (C + K) H W
  CHECK(a.normal.memory_bytes == 25985024);
  CHECK(a.depsep_fused.memory_bytes == 25725184);

  // Conventions: "FLOPs" = multiply-adds / 10^9 to 2 significant digits, MB = 10^6 bytes (2^20
  // would give 24.8 / 24.5), intensity = multiply-adds per ELEMENT, parameters to the nearest k.
  const di::ArticleStrings n = di::article_strings(a.normal);
  const di::ArticleStrings d = di::article_strings(a.depsep_fused);
  CHECK(n.params == "147k");
  CHECK(d.params == "18k");
  CHECK(n.gflops == "7.4");
  CHECK(d.gflops == "0.88");
  CHECK(n.mb == "26.0");
  CHECK(d.mb == "25.7");
  CHECK(n.intensity == "569.5");
  CHECK(d.intensity == "68.4");

  // The training table's parameter counts follow the same rounding: 528,778 -> 529k.
  di::KindCounts model;
  model.params = 528778;
  CHECK(di::article_strings(model).params == "529k");
  model.params = 135973;
  CHECK(di::article_strings(model).params == "136k");

  // At fp16 the per-byte intensity of the corrected model is the same number (2 FLOP / 2 bytes).
  CHECK(a.normal.flops == 2 * a.normal.macs);
  CHECK(di::fixed(a.normal.intensity, 1) == "569.5");
  // The unfused DepSep moves H W (3C + K) activation elements: intensity halves.
  CHECK(a.depsep_separate.activation_elems == 224 * 224 * (3 * 128 + 128));
  CHECK(di::fixed(a.depsep_separate.article_intensity, 1) == "34.2");
}

TEST_CASE("intensity: the article's measured rates in its units") {
  const di::Analysis a = di::analyze(article_problem());
  // V100 microbenchmark: "30.3 TFLOPS" / "3.81 TFLOPS" at batch 16, 26.5 / 3.73 at batch 1 are
  // 10^12 multiply-adds per second.
  CHECK(di::significant(di::achieved(a.normal, 1, 4097).article_tflops, 3) == "30.3");
  CHECK(di::significant(di::achieved(a.depsep_fused, 1, 4335).article_tflops, 3) == "3.81");
  CHECK(di::significant(di::achieved(a.normal, 1, 3585).article_tflops, 3) == "26.5");
  CHECK(di::significant(di::achieved(a.depsep_fused, 1, 4241).article_tflops, 3) == "3.73");
  CHECK(di::achieved(a.normal, 1, 4097).tflops == doctest::Approx(60.63).epsilon(1e-3));
  // "Est. Mem. Throughput 106.5 / 111.4 GB/s" = conv/s x ideal bytes per image. The exact bytes
  // give 111.5 for DepSep; the article multiplied its rounded 25.7 MB (4335 x 25.7 = 111.4).
  CHECK(di::fixed(di::achieved(a.normal, 1, 4097).mem_gbs, 1) == "106.5");
  CHECK(di::fixed(di::achieved(a.depsep_fused, 1, 4335).mem_gbs, 1) == "111.5");
  CHECK(di::fixed(4335 * 25.7 / 1e3, 1) == "111.4");
}

TEST_CASE("intensity: hand-counted odd-sized layer (M=N=5, C=3, K=7, H=W=13, fp32)") {
  const di::Analysis a = di::analyze(odd_problem());
  CHECK(a.bytes_per_elem == 4);
  CHECK(a.out_h == 13);
  CHECK(a.out_w == 13);
  // normal: 5*5*3*7 = 525 weights; 525 * 169 = 88,725 MACs; (3 + 7) * 169 = 1,690 activations.
  CHECK(a.normal.params == 525);
  CHECK(a.normal.macs == 88725);
  CHECK(a.normal.flops == 177450);
  CHECK(a.normal.activation_elems == 1690);
  CHECK(a.normal.memory_elems == 2215);
  CHECK(a.normal.memory_bytes == 8860);
  CHECK(a.normal.article_intensity == doctest::Approx(88725.0 / 2215.0));
  CHECK(a.normal.intensity == doctest::Approx(177450.0 / 8860.0));  // 20.03 FLOP/byte
  // DepSep: 5*5*3 + 3*7 = 96 weights; 96 * 169 = 16,224 MACs.
  CHECK(a.depsep_fused.params == 96);
  CHECK(a.depsep_fused.macs == 16224);
  CHECK(a.depsep_fused.flops == 32448);
  CHECK(a.depsep_fused.activation_elems == 1690);
  CHECK(a.depsep_fused.memory_bytes == (96 + 1690) * 4);
  CHECK(a.depsep_fused.intensity == doctest::Approx(32448.0 / 7144.0));
  // Separate kernels: H W (3C + K) = 169 * 16 = 2,704 activation elements.
  CHECK(a.depsep_separate.params == 96);
  CHECK(a.depsep_separate.macs == 16224);
  CHECK(a.depsep_separate.activation_elems == 2704);
  CHECK(a.depsep_separate.memory_bytes == (96 + 2704) * 4);
  CHECK(a.depsep_separate.intensity == doctest::Approx(32448.0 / 11200.0));

  SUBCASE("with bias and a batch of 2: bias once, activations twice") {
    di::ConvProblem p = odd_problem();
    p.bias = true;
    p.batch = 2;
    const di::Analysis b = di::analyze(p);
    CHECK(b.normal.params == 532);
    CHECK(b.normal.macs == 2 * 88725);
    CHECK(b.normal.flops == 2 * (177450 + 7 * 169));
    CHECK(b.normal.memory_elems == 532 + 2 * 1690);
    CHECK(b.depsep_fused.params == 103);
    CHECK(b.depsep_fused.flops == 2 * (32448 + 7 * 169));
    CHECK(b.depsep_separate.memory_elems == 103 + 2 * 2704);
  }
  SUBCASE("valid padding: 13x13 -> 9x9") {
    di::ConvProblem p = odd_problem();
    p.padding = "valid";
    const di::Analysis v = di::analyze(p);
    CHECK(v.out_h == 9);
    CHECK(v.out_w == 9);
    CHECK(v.normal.macs == 525 * 81);
    CHECK(v.normal.activation_elems == 3 * 169 + 7 * 81);
    CHECK(v.depsep_separate.activation_elems == 3 * 169 + 2 * 3 * 81 + 7 * 81);
  }
  SUBCASE("explicit padding of 1 pixel per side: 13x13 -> 11x11") {
    di::ConvProblem p = odd_problem();
    p.padding = "1";
    p.kernel_w = 3;
    const di::Analysis v = di::analyze(p);
    CHECK(v.out_h == 11);
    CHECK(v.out_w == 13);
    CHECK(v.normal.macs == 5 * 3 * 3 * 7 * 11 * 13);
  }
}

TEST_CASE("intensity: roofline picks the binding side (brief's H100 bounds)") {
  const di::Ceilings h100{798e12, 3.0e12};
  di::ConvProblem p = article_problem();
  p.batch = 16;
  const di::Roofline r = di::roofline(di::analyze(p), h100);
  CHECK(r.ridge_intensity == doctest::Approx(266.0));
  // Normal: compute-bound, ~54k conv/s; DepSep: memory-bound, ~58k separate / ~117k fused.
  CHECK(r.normal.bound == di::Bound::kCompute);
  CHECK(r.normal.images_per_s == doctest::Approx(798e12 / 14797504512.0));
  CHECK(r.normal.images_per_s == doctest::Approx(53928).epsilon(1e-3));
  CHECK(r.depsep_separate.bound == di::Bound::kMemory);
  CHECK(r.depsep_separate.images_per_s == doctest::Approx(58350).epsilon(2e-3));
  CHECK(r.depsep_fused.bound == di::Bound::kMemory);
  CHECK(r.depsep_fused.images_per_s == doctest::Approx(116750).epsilon(2e-3));
  CHECK(r.normal.per_image_s * r.normal.images_per_s == doctest::Approx(1.0));

  // The side flips where the intensity crosses the ridge: a slow ALU makes everything compute-
  // bound, a slow memory makes everything memory-bound.
  const di::Roofline slow_alu = di::roofline(di::analyze(p), {1e12, 3.0e12});
  CHECK(slow_alu.depsep_separate.bound == di::Bound::kCompute);
  const di::Roofline slow_mem = di::roofline(di::analyze(p), {798e12, 1e9});
  CHECK(slow_mem.normal.bound == di::Bound::kMemory);
  CHECK(slow_mem.normal.batch_s == doctest::Approx(slow_mem.normal.memory_s));

  // % of roofline for a measured rate.
  const auto m = di::achieved(di::analyze(p).normal, 16, 26964, r.normal);
  REQUIRE(m.percent_of_roofline);
  CHECK(*m.percent_of_roofline == doctest::Approx(50.0).epsilon(1e-3));
  CHECK_THROWS_AS(di::roofline(di::analyze(p), {0, 1e12}), std::invalid_argument);
}

TEST_CASE("intensity: bad inputs are rejected with the flag's name") {
  di::ConvProblem p = article_problem();
  CHECK(di::validate(p).empty());

  p.in_channels = 0;
  p.width = -3;
  auto errors = di::validate(p);
  CHECK(errors.size() == 2);
  CHECK(mentions(errors, "--in-channels (-C) must be a positive integer, got 0"));
  CHECK(mentions(errors, "--width (-W) must be a positive integer, got -3"));
  CHECK_THROWS_WITH_AS(di::analyze(p), doctest::Contains("--in-channels"), std::invalid_argument);

  p = article_problem();
  p.dtype = "fp64";
  CHECK(mentions(di::validate(p), "--dtype must be one of fp16, bf16, fp32, got 'fp64'"));

  p = article_problem();
  p.padding = "full";
  CHECK(mentions(di::validate(p), "--padding"));
  p.padding = "-1";
  CHECK(mentions(di::validate(p), "--padding"));

  p = odd_problem();
  p.height = 3;
  p.padding = std::string("valid");
  errors = di::validate(p);
  CHECK(mentions(errors, "--kernel-h (-M) = 5 is larger than the padded image height 3"));
  CHECK(!mentions(errors, "--kernel-w"));
  p.padding = std::string("1");  // 3 + 2 = 5: a 5-high kernel fits exactly, one output row
  CHECK(di::validate(p).empty());
  CHECK(di::analyze(p).out_h == 1);

  p = article_problem();
  p.batch = 1 << 30;
  p.in_channels = p.out_channels = 1 << 16;
  CHECK(mentions(di::validate(p), "sizes too large"));
}

TEST_CASE("intensity: text report") {
  const std::string text = di::format_text(di::analyze(article_problem()), std::nullopt);
  for (const char* s : {"147k", "18k", "7.4", "0.88", "26.0", "25.7", "569.5", "68.4",
                        "depsep separate", "No roofline: pass --peak-tflops"}) {
    CHECK_MESSAGE(text.find(s) != std::string::npos, s);
  }
  di::ConvProblem p = article_problem();
  const auto a = di::analyze(p);
  const std::string with_roof = di::format_text(a, di::roofline(a, {798e12, 3e12}), 4097.0, 4335.0);
  CHECK(with_roof.find("bound by") != std::string::npos);
  CHECK(with_roof.find("compute") != std::string::npos);
  CHECK(with_roof.find("% of roofline") != std::string::npos);
  CHECK(with_roof.find("No roofline") == std::string::npos);
  CHECK(di::with_commas(1234567) == "1,234,567");
  CHECK(di::significant(0.09996, 2) == "0.10");
}

#ifdef DSC_BINARY_DIR
namespace {
struct Run {
  int status;
  std::string out, err;
};
Run run_intensity(const std::string& args) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string out = (dir / "dsc_test_intensity.out").string();
  const std::string err = (dir / "dsc_test_intensity.err").string();
  const std::string cmd =
      std::string("'") + DSC_BINARY_DIR + "/bin/intensity' " + args + " >" + out + " 2>" + err;
  const int raw = std::system(cmd.c_str());
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}
}  // namespace

TEST_CASE("intensity program: exit codes and messages") {
  if (!std::filesystem::exists(std::string(DSC_BINARY_DIR) + "/bin/intensity")) {
    MESSAGE("bin/intensity not built; skipping the program checks");
    return;
  }
  Run r = run_intensity("");
  CHECK(r.status == 0);
  CHECK(r.out.find("569.5") != std::string::npos);

  r = run_intensity("--bogus");
  CHECK(r.status == 2);  // usage errors exit 2, like train and bench
  CHECK(r.err.find("--bogus") != std::string::npos);

  r = run_intensity("-C 0");
  CHECK(r.status != 0);
  CHECK(r.err.find("--in-channels") != std::string::npos);

  r = run_intensity("--padding valid -H 2");
  CHECK(r.status != 0);
  CHECK(r.err.find("--kernel-h") != std::string::npos);

  r = run_intensity("--peak-tflops 100");
  CHECK(r.status != 0);
  CHECK(r.err.find("--bandwidth-gbs") != std::string::npos);

  r = run_intensity("--ceilings /nonexistent/ceilings.json");
  CHECK(r.status != 0);
  CHECK(r.err.find("--ceilings") != std::string::npos);

  r = run_intensity("--json --peak-tflops 798 --bandwidth-gbs 3000");
  CHECK(r.status == 0);
  CHECK(r.out.find("\"bound\": \"compute\"") != std::string::npos);
  CHECK(r.out.find("\"intensity\": \"569.5\"") != std::string::npos);
}
#endif
