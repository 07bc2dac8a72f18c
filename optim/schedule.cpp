// Learning-rate schedules (see schedule.h). Tested in tests/core/test_optim.cpp.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "core/error.h"

namespace dsc {

float LrSchedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return base_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  }
  if (kind == ScheduleKind::Constant) return base_lr;
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double t = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  const double f = kind == ScheduleKind::Cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * t))
                                                 : 1.0 - t;
  return static_cast<float>(min_lr + (base_lr - min_lr) * f);
}

std::string LrSchedule::describe() const {
  std::ostringstream os;
  os << (kind == ScheduleKind::Constant ? "constant" : kind == ScheduleKind::Cosine ? "cosine" : "linear")
     << " (lr " << base_lr;
  if (warmup_steps) os << ", warm-up " << warmup_steps << " steps";
  if (kind != ScheduleKind::Constant) os << ", to " << min_lr << " at step " << total_steps;
  os << ")";
  return os.str();
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "linear") return ScheduleKind::Linear;
  throw Error("unknown schedule '" + name + "' (expected constant, cosine or linear)");
}

}  // namespace dsc
