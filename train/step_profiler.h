// StepProfiler: the timing half of the training-step profile (train/profile.h), in the step's own
// library (dsc_train_step) because TrainStep marks its rows with it. The step calls mark(row) at
// each boundary; the time between two marks goes to the earlier row. TrainStep, with a profiler
// set, runs a Sequential's children one at a time, each under a ProfileScope (core/autograd.h);
// during backward() the profiler, installed as the BackwardObserver, switches to the backward row
// of the layer that recorded each node. On a backend with device timers (CUDA: events on the
// compute stream) a mark queues a marker and nothing waits until end_step(), which reads the
// device time between consecutive markers; elsewhere (the CPU) a mark synchronises the device and
// reads the host clock. Between
// begin_step() and end_step() kernel phases are enabled (core/phases.h), and each mark hands the
// closing row the phases that ran in it.
// Tested in tests/train/test_profile.cpp.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace dsc {

// Times the rows of one step at a time; the step calls mark() at each boundary.
class StepProfiler : public BackwardObserver {
 public:
  explicit StepProfiler(Device device);
  ~StepProfiler() override;
  // A layer's forward row "<name> fwd" (its id is what a ProfileScope takes) and its backward row
  // "<name> bwd"; m (null for the loss) and the shapes of its input and output go to the counts.
  int layer(const std::string& name, const Module* m);
  void set_shapes(int id, const Shape& in, const Shape& out);
  // From now on time goes to row `name` ("data copy", "loss fwd", ...), or to forward row id.
  void mark(const std::string& name);
  void mark_id(int id);
  void begin_step();  // time before the first mark is not attributed
  void end_step();    // closes the open row, keeps each row's time and the step's
  void clear();       // forgets the times kept so far (the rows stay)
  void before_node(int scope) override;

  struct Row {
    std::string name, layer;    // "conv1 fwd", "conv1"
    std::string pass;           // forward | backward | step
    const Module* module = nullptr;
    Shape in, out;
    int backward = -1;          // a forward row's backward row
    std::vector<double> seconds;  // one per profiled step
    double open_s = 0;          // this step so far
    // Kernel phases (core/phases.h) that ran inside the row: thread-seconds per name, summed
    // over the profiled steps.
    std::vector<std::pair<std::string, double>> phases;
  };
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<double>& step_seconds() const { return step_seconds_; }
  // Whether the rows are timed by device markers (no synchronisation inside the step).
  bool device_timers() const { return timers_; }

 private:
  int row_id(const std::string& name, const std::string& layer, const std::string& pass);
  double now();
  void close_row(int row, double seconds, std::vector<std::pair<std::string, double>> ran);
  void release_markers() noexcept;
  Device device_;
  bool timers_ = false;
  // With device timers: the step's first marker, then (row closed, marker) per mark.
  void* first_marker_ = nullptr;
  std::vector<std::pair<int, void*>> markers_;
  std::vector<Row> rows_;
  std::map<std::string, int> ids_;
  int current_ = -1;
  double last_ = 0, begin_ = 0;
  std::vector<double> step_seconds_;
  BackwardObserver* previous_observer_ = nullptr;
};

// Marks `row` when profiling (p not null).
inline void profile_mark(StepProfiler* p, const char* row) {
  if (p) p->mark(row);
}

}  // namespace dsc
