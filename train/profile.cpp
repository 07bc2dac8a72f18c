// The training-step profile (see profile.h): timing rows with marks and the backward observer,
// the alternating profiled / unprofiled pass, the counts and roofline of every row, the table and
// the JSON-lines records. Tested in tests/train/test_profile.cpp.
#include "train/profile.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "apps/lib/bench_device.h"
#include "apps/lib/bench_timing.h"
#include "apps/lib/intensity.h"
#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/error.h"
#include "optim/optimizer.h"
#include "train/profile_counts.h"

namespace dsc {
namespace {

// A row under 10% of its roofline bound is not explained by either ceiling.
constexpr double kOverheadFraction = 0.10;

}  // namespace

// ---- flags ---------------------------------------------------------------------------------------

void add_profile_flags(CLI::App& app, ProfileOptions& o) {
  app.add_flag("--profile", o.enabled,
               "after training, a separate pass that times every layer's forward and backward, "
               "the loss, the optimizer and the rest of the step against the roofline (a table, "
               "and \"profile\" records in --log)");
  app.add_option("--profile-steps", o.steps,
                 "profiled steps (medians; as many unprofiled steps alternate with them)")
      ->capture_default_str();
  app.add_option("--ceilings", o.ceilings,
                 "the profile's device ceilings: a `bench device --json` file (default: measured "
                 "quickly at the start of the profile)");
}

void validate(const ProfileOptions& o) {
  DSC_CHECK(o.steps >= 1, "--profile-steps must be at least 1, got ", o.steps);
  DSC_CHECK(o.enabled || o.ceilings.empty(), "--ceilings needs --profile");
  if (!o.ceilings.empty()) bench::read_ceilings(o.ceilings);  // names --ceilings and the file
}

// ---- the pass ------------------------------------------------------------------------------------

ProfileReport run_profile(const ProfileSetup& s, const ProfileOptions& o, std::ostream& progress) {
  ProfileReport r;
  r.model = s.model;
  r.precision = s.precision;
  r.device = device_name(s.device);
  r.batch = s.batch;
  r.threads = cpu::num_threads();
  r.steps = o.steps;
  intensity::Ceilings c;
  if (!o.ceilings.empty()) {
    c = bench::read_ceilings(o.ceilings);
    r.ceilings_source = o.ceilings;
  } else {
    bench::DeviceOptions d;
    d.device = s.device;
    d.copy_bytes = s.device == Device::CPU ? int64_t(128) << 20 : int64_t(512) << 20;
    d.gemm_n = s.device == Device::CPU ? 2048 : 8192;
    d.timing = {0.25, 3, 1};
    d.threads = r.threads;
    progress << "profile    measuring the device ceilings (bench device, quick: 3 x 0.25 s)\n"
             << std::flush;
    const nlohmann::ordered_json j = bench::measure_device(d);
    c.peak_flops = j["peak_flops"].get<double>();
    c.bandwidth_bytes_per_s = j["bandwidth_bytes_per_s"].get<double>();
    r.ceilings_source = "measured now (bench device: copy of " +
                        std::to_string(d.copy_bytes >> 20) + " MiB, GEMM " +
                        std::to_string(d.gemm_n) + "^3, medians of 3 x 0.25 s)";
  }
  r.peak_flops = c.peak_flops;
  r.bandwidth_bytes_per_s = c.bandwidth_bytes_per_s;

  progress << "profile    " << o.steps << " profiled steps alternating with " << o.steps
           << " unprofiled ones\n"
           << std::flush;
  StepProfiler p(s.device);
  const auto sync = [&] { kernels(s.device).synchronize(); };
  for (int i = 0; i < 2; ++i) s.step(nullptr);
  p.begin_step();
  s.step(&p);
  p.end_step();
  p.clear();
  std::vector<double> plain;
  for (int i = 0; i < o.steps; ++i) {
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    s.step(nullptr);
    sync();
    plain.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    p.begin_step();
    s.step(&p);
    p.end_step();
  }
  r.step_ms = 1e3 * bench::median(plain);
  r.profiled_step_ms = 1e3 * bench::median(p.step_seconds());

  // What the counts need: the input and logits shapes, the parameters, the optimizer.
  StepShape shape;
  shape.batch = s.batch;
  shape.elem_bytes = s.precision == "amp" ? 2 : 4;
  for (const StepProfiler::Row& row : p.rows()) {
    if (!row.module) continue;
    if (shape.image_elems == 0) {
      shape.image_elems = 1;
      for (int64_t d : row.in) shape.image_elems *= d;
    }
    if (row.out.size() == 2) shape.classes = row.out[1];
  }
  Optimizer& opt = const_cast<Optimizer&>(*s.optimizer);
  shape.params = opt.parameters().numel();
  shape.optimizer = dynamic_cast<const Sgd*>(s.optimizer) ? "sgd" : "adam";

  for (const StepProfiler::Row& row : p.rows()) {
    ProfileRow out;
    out.name = row.name;
    out.layer = row.layer;
    out.pass = row.pass;
    out.ms = 1e3 * bench::median(row.seconds);
    const bool backward = row.pass == "backward";
    const WorkCounts w =
        row.module ? layer_counts(*row.module, row.in, row.out, shape.elem_bytes, backward)
        : row.layer == "loss" ? loss_counts(shape.batch, shape.classes, shape.elem_bytes, backward)
                              : step_row_counts(row.name, shape);
    out.macs = w.macs;
    out.flops = w.flops;
    out.bytes = w.bytes;
    out.counted = w.known;
    for (const auto& [name, seconds] : row.phases) {
      ProfilePhase ph;
      ph.name = name;
      ph.ms = 1e3 * seconds / (double(std::max(1, r.threads)) * r.steps);
      ph.percent = out.ms > 0 ? 100 * ph.ms / out.ms : 0;
      out.phases.push_back(ph);
    }
    r.rows_ms += out.ms;
    r.rows.push_back(out);
  }
  ProfileRow rest;
  rest.name = rest.layer = "unattributed";
  rest.pass = "step";
  rest.ms = r.step_ms - r.rows_ms;
  rest.counted = false;
  r.rows.push_back(rest);

  for (ProfileRow& row : r.rows) {
    row.percent = r.step_ms > 0 ? 100.0 * row.ms / r.step_ms : 0;
    if (row.name == "unattributed") continue;
    const double s_row = row.ms / 1e3;
    intensity::KindCounts k;
    k.flops = row.flops;
    k.memory_bytes = row.bytes;
    const intensity::RooflinePoint b = intensity::roofline_point(k, std::max<int64_t>(1, r.batch), c);
    row.bound_ms = 1e3 * b.batch_s;
    row.roofline = row.flops == 0 && row.bytes == 0 ? "none" : intensity::bound_name(b.bound);
    if (s_row > 0) {
      row.flop_per_s = row.flops / s_row;
      row.bytes_per_s = row.bytes / s_row;
      row.bound_fraction = b.batch_s / s_row;
    }
    row.limit = row.bound_fraction >= kOverheadFraction ? row.roofline : "overhead";
  }
  return r;
}

// ---- output --------------------------------------------------------------------------------------

std::string format_profile(const ProfileReport& r) {
  std::ostringstream os;
  char buf[256];
  os << "profile    " << r.model << ", batch " << r.batch << ", " << r.precision << ", "
     << r.device << ", " << r.threads << " threads: medians of " << r.steps
     << " profiled steps (each row synchronised and timed on the host clock)\n";
  std::snprintf(buf, sizeof buf, "ceilings   %.1f GFLOP/s, %.1f GB/s: %s\n", r.peak_flops / 1e9,
                r.bandwidth_bytes_per_s / 1e9, r.ceilings_source.c_str());
  os << buf;
  std::snprintf(buf, sizeof buf, "%-18s %9s %7s %9s %9s %8s %8s %7s %9s %6s  %s\n", "row", "ms",
                "% step", "MMAC", "MFLOP", "MB", "GFLOP/s", "GB/s", "bound ms", "% bnd", "limit");
  os << buf;
  for (const ProfileRow& row : r.rows) {
    if (row.name == "unattributed") {
      std::snprintf(buf, sizeof buf, "%-18s %9.3f %6.1f%%\n", row.name.c_str(), row.ms,
                    row.percent);
    } else {
      std::snprintf(buf, sizeof buf,
                    "%-18s %9.3f %6.1f%% %9.1f %9.1f %8.2f %8.2f %7.2f %9.3f %5.1f%%  %s%s\n",
                    row.name.c_str(), row.ms, row.percent, row.macs / 1e6, row.flops / 1e6,
                    row.bytes / 1e6, row.flop_per_s / 1e9, row.bytes_per_s / 1e9, row.bound_ms,
                    100 * row.bound_fraction, row.limit.c_str(),
                    row.counted ? "" : " (no formula)");
    }
    os << buf;
    double in_phases = 0;
    for (const ProfilePhase& ph : row.phases) {
      std::snprintf(buf, sizeof buf, "  %-16s %9.3f %6.1f%% of %s\n", ph.name.c_str(), ph.ms,
                    ph.percent, row.name.c_str());
      os << buf;
      in_phases += ph.ms;
    }
    if (!row.phases.empty()) {
      std::snprintf(buf, sizeof buf, "  %-16s %9.3f %6.1f%% of %s\n", "rest", row.ms - in_phases,
                    row.ms > 0 ? 100 * (row.ms - in_phases) / row.ms : 0.0, row.name.c_str());
      os << buf;
    }
  }
  std::snprintf(buf, sizeof buf,
                "step       %.3f ms unprofiled (median of %d), %.3f ms profiled; rows sum to "
                "%.3f ms (%.1f%% of the unprofiled step)\n",
                r.step_ms, r.steps, r.profiled_step_ms, r.rows_ms,
                r.step_ms > 0 ? 100 * r.rows_ms / r.step_ms : 0.0);
  os << buf;
  return os.str();
}

std::vector<nlohmann::json> profile_records(const ProfileReport& r) {
  std::vector<nlohmann::json> out;
  for (const ProfileRow& row : r.rows) {
    nlohmann::json j = {{"type", "profile"},   {"model", r.model},     {"row", row.name},
                        {"layer", row.layer},  {"pass", row.pass},     {"ms", row.ms},
                        {"percent", row.percent}};
    if (row.name != "unattributed") {
      j.update({{"macs", row.macs},
                {"flops", row.flops},
                {"bytes", row.bytes},
                {"counted", row.counted},
                {"flop_per_s", row.flop_per_s},
                {"bytes_per_s", row.bytes_per_s},
                {"bound_ms", row.bound_ms},
                {"bound_fraction", row.bound_fraction},
                {"roofline", row.roofline},
                {"limit", row.limit}});
    }
    if (!row.phases.empty()) {
      nlohmann::json ph = nlohmann::json::array();
      for (const ProfilePhase& p : row.phases)
        ph.push_back({{"name", p.name}, {"ms", p.ms}, {"percent_of_row", p.percent}});
      j["phases"] = ph;
    }
    out.push_back(j);
  }
  out.push_back({{"type", "profile"},
                 {"row", "total"},
                 {"model", r.model},
                 {"device", r.device},
                 {"precision", r.precision},
                 {"batch", r.batch},
                 {"threads", r.threads},
                 {"steps", r.steps},
                 {"step_ms", r.step_ms},
                 {"profiled_step_ms", r.profiled_step_ms},
                 {"rows_ms", r.rows_ms},
                 {"unattributed_ms", r.step_ms - r.rows_ms},
                 {"peak_flops", r.peak_flops},
                 {"bandwidth_bytes_per_s", r.bandwidth_bytes_per_s},
                 {"ceilings", r.ceilings_source}});
  return out;
}

}  // namespace dsc
