// Where the milliseconds of a training step go (`train --profile`, `train_steps --profile`): a
// separate pass after training (or after the timed steps), so the headline images/sec is never
// perturbed. It alternates unprofiled steps (the reference step time) with profiled ones in which
// every row is timed: each layer's forward and backward, the loss, zero grad, the optimizer
// update, the finite / loss-scale check, the data copy and the running tally. Per row: the median
// time over the profiled steps (ms and % of the unprofiled median step), multiply-adds and FLOPs
// (train/profile_counts.h), the minimal bytes moved, the achieved FLOP/s and bytes/s, the roofline
// bound from the device ceilings (`bench device`, apps/lib/bench_device.h), the fraction of the
// bound reached, and the limit: compute or memory (whichever ceiling bounds the row), or
// overhead when the bound explains under 10% of the measured time. An "unattributed" row is the
// unprofiled step time minus the rows' sum (negative when profiling slowed the rows down).
//
// How rows are timed: the step calls mark(row) at each boundary (TrainStep, with a profiler set,
// runs a Sequential's children one at a time under a ProfileScope each, core/autograd.h); during
// backward() the profiler, installed as the BackwardObserver, switches to the backward row of the
// layer that recorded each node. On the CPU a mark synchronises and reads the host clock; on a GPU
// it queues a CUDA event and nothing waits inside the step (the rows are read from the events at
// its end: train/step_profiler.h). Kernels that
// name their phases (core/phases.h: the fused CPU DepSep layer) get sub-rows: how the row's time
// splits between its depthwise and pointwise parts.
// Tested in tests/train/test_profile.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "layers/module.h"
#include "train/step_profiler.h"

namespace CLI {
class App;
}

namespace dsc {

class Optimizer;

struct ProfileOptions {
  bool enabled = false;  // --profile
  int steps = 20;        // --profile-steps: profiled steps (as many unprofiled ones alternate)
  std::string ceilings;  // --ceilings: a `bench device --json` file; empty: measured at the start
};
void add_profile_flags(CLI::App& app, ProfileOptions& o);
// Throws dsc::Error naming the flag for a bad value (before anything runs).
void validate(const ProfileOptions& o);

// A named part of a row's kernel work (core/phases.h; so far the fused CPU DepSep layer's
// depthwise and pointwise parts): its thread-seconds over the profiled steps / (threads x steps),
// in ms, and as % of the row. What the phases leave of the row (reductions, buffers, threads
// waiting for each other) is the row's "rest".
struct ProfilePhase {
  std::string name;
  double ms = 0, percent = 0;
};

struct ProfileRow {
  std::string name, layer, pass;
  double ms = 0, percent = 0;  // median over the profiled steps; % of the unprofiled step
  int64_t macs = 0, flops = 0, bytes = 0;
  bool counted = true;  // false: no formula for this layer (counts are zero)
  double flop_per_s = 0, bytes_per_s = 0, bound_ms = 0, bound_fraction = 0;
  std::string roofline;  // compute | memory: the ceiling that bounds the row; none: no work
  std::string limit;     // compute | memory | overhead
  std::vector<ProfilePhase> phases;  // empty for rows whose kernels name no phases
};

struct ProfileReport {
  std::string model, device, precision;
  int64_t batch = 0;
  int threads = 0, steps = 0;
  double peak_flops = 0, bandwidth_bytes_per_s = 0;
  std::string ceilings_source;  // the file, or "measured now (...)"
  double step_ms = 0;           // unprofiled median
  double profiled_step_ms = 0;  // median of the profiled steps (marks included)
  double rows_ms = 0;           // sum of the rows' medians
  std::vector<ProfileRow> rows;  // the last one is "unattributed"
};

// What the pass needs: one whole step (with a profiler it marks its own rows and hands the
// profiler to its TrainStep), and what the counts need.
struct ProfileSetup {
  std::string model, precision;
  Device device = Device::CPU;
  int64_t batch = 0;
  const Optimizer* optimizer = nullptr;
  std::function<void(StepProfiler*)> step;
};

// Warms up (2 unprofiled steps, 1 profiled), then alternates o.steps unprofiled and profiled
// steps; reads or measures the ceilings first (`progress` says which).
ProfileReport run_profile(const ProfileSetup& s, const ProfileOptions& o, std::ostream& progress);

// The terminal table.
std::string format_profile(const ProfileReport& r);
// JSON-lines records: {"type": "profile", "row": ...} per row, then {"type": "profile", "row":
// "total", ...} with the step times and ceilings.
std::vector<nlohmann::json> profile_records(const ProfileReport& r);

}  // namespace dsc
