// Learning-rate schedules as pure functions of the update count: constant, or a linear warm-up
// from 0 followed by cosine or linear decay to min_lr at total_steps.
#pragma once

#include <cstdint>
#include <string>

namespace dsc {

enum class ScheduleKind { Constant, Cosine, Linear };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Constant;
  float base_lr = 1e-3f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // needed by cosine/linear decay
  float min_lr = 0.0f;
  // The learning rate for update number `step` (0-based).
  float lr_at(int64_t step) const;
  std::string describe() const;
};

// "constant", "cosine" or "linear"; throws naming the accepted values.
ScheduleKind parse_schedule_kind(const std::string& name);

}  // namespace dsc
