// The timing of a step's rows (see step_profiler.h).
#include "train/step_profiler.h"

#include <algorithm>
#include <chrono>

#include "core/backend.h"
#include "core/phases.h"

namespace dsc {

StepProfiler::StepProfiler(Device device) : device_(device) {
  const KernelTable& k = kernels(device_);
  timers_ = k.timer_mark && k.timer_seconds && k.timer_release;
}

StepProfiler::~StepProfiler() {
  phases::set_enabled(false);
  release_markers();  // a step left open by an exception
}

void StepProfiler::release_markers() noexcept {
  if (!timers_) return;
  const KernelTable& k = kernels(device_);
  k.timer_release(first_marker_);
  for (auto& [row, m] : markers_) k.timer_release(m);
  first_marker_ = nullptr;
  markers_.clear();
}

double StepProfiler::now() {
  kernels(device_).synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int StepProfiler::row_id(const std::string& name, const std::string& layer,
                         const std::string& pass) {
  auto [it, fresh] = ids_.try_emplace(name, int(rows_.size()));
  if (fresh) {
    Row r;
    r.name = name;
    r.layer = layer;
    r.pass = pass;
    rows_.push_back(r);
  }
  return it->second;
}

int StepProfiler::layer(const std::string& name, const Module* m) {
  const int id = row_id(name + " fwd", name, "forward");
  const int bwd = row_id(name + " bwd", name, "backward");
  rows_[id].module = rows_[bwd].module = m;
  rows_[id].backward = bwd;
  return id;
}

void StepProfiler::set_shapes(int id, const Shape& in, const Shape& out) {
  for (int r : {id, rows_[id].backward}) {
    rows_[r].in = in;
    rows_[r].out = out;
  }
}

void StepProfiler::mark(const std::string& name) { mark_id(row_id(name, name, "step")); }

void StepProfiler::close_row(int row, double seconds,
                             std::vector<std::pair<std::string, double>> ran) {
  if (row < 0) return;
  Row& r = rows_[row];
  r.open_s += seconds;
  for (auto& [name, s] : ran) {
    auto it = std::find_if(r.phases.begin(), r.phases.end(),
                           [&](const auto& p) { return p.first == name; });
    if (it == r.phases.end())
      r.phases.emplace_back(name, s);
    else
      it->second += s;
  }
}

void StepProfiler::mark_id(int id) {
  if (timers_) {  // the row's time is read at end_step; its host-side phases now
    markers_.emplace_back(current_, kernels(device_).timer_mark());
    close_row(current_, 0.0, phases::take());
    current_ = id;
    return;
  }
  const double t = now();
  close_row(current_, t - last_, phases::take());
  current_ = id;
  last_ = t;
}

void StepProfiler::before_node(int scope) {
  if (scope < 0 || scope >= int(rows_.size())) return;
  const int target = rows_[scope].backward >= 0 ? rows_[scope].backward : scope;
  if (target != current_) mark_id(target);
}

void StepProfiler::begin_step() {
  for (Row& r : rows_) r.open_s = 0;
  previous_observer_ = set_backward_observer(this);
  current_ = -1;
  if (timers_)
    first_marker_ = kernels(device_).timer_mark();
  else
    last_ = begin_ = now();
  phases::take();  // whatever ran before the step is not the step's
  phases::set_enabled(true);
}

void StepProfiler::end_step() {
  mark_id(-1);
  phases::set_enabled(false);
  set_backward_observer(previous_observer_);
  double step = last_ - begin_;
  if (timers_) {  // one wait, for the last marker (mark_id(-1) queued it); then the intervals
    const KernelTable& k = kernels(device_);
    void* prev = first_marker_;
    for (auto& [row, m] : markers_) {
      if (row >= 0) rows_[row].open_s += k.timer_seconds(prev, m);
      prev = m;
    }
    step = k.timer_seconds(first_marker_, prev);
    release_markers();
  }
  for (Row& r : rows_) r.seconds.push_back(r.open_s);
  step_seconds_.push_back(step);
}

void StepProfiler::clear() {
  for (Row& r : rows_) {
    r.seconds.clear();
    r.phases.clear();
  }
  step_seconds_.clear();
}

}  // namespace dsc
