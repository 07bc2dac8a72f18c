// `train --profile` (see train/profile.h): after the summary, so neither images/sec nor the
// accuracies are touched, the Trainer's step on one full batch of the training data is profiled:
// the batch copied into the step's input tensors (eagerly: no step graph), the TrainStep, the
// running tally and, in fp32, the finite check of the gradients, as train_batch runs them. The
// table goes to the terminal and the rows to the log as "profile" records. The extra steps update
// the model after its last checkpoint; nothing is saved. Tested in tests/train/test_profile.cpp.
#include <ostream>

#include "core/backend.h"
#include "core/error.h"
#include "train/trainer.h"

namespace dsc {

void Trainer::profile() {
  loader_->start_epoch(0);
  data::BatchView b;
  DSC_CHECK(loader_->next(b), "--profile: the training set has no batch");
  BatchTensors t = to_tensors(b, device_, DType::F32);
  model_->train();
  ProfileSetup s;
  s.model = cfg_.model;
  s.precision = amp_ ? "amp" : "fp32";
  s.device = device_;
  s.batch = b.size;
  s.optimizer = opt_.get();
  s.step = [&](StepProfiler* p) {
    profile_mark(p, "data copy");
    copy_batch(b, t.images, t.labels);
    step_->set_profiler(p);
    const StepResult r = (*step_)(t.images, t.labels);
    step_->set_profiler(nullptr);
    profile_mark(p, "tally");
    tally_->add_on_device(r.loss, r.logits, t.labels, b.size);
    if (!amp_) {
      profile_mark(p, "finite check");
      kernels(device_).check_finite(opt_->parameters().grads(), nonfinite_);
    }
  };
  const ProfileReport report = run_profile(s, cfg_.profile, out_);
  out_ << format_profile(report) << std::flush;
  for (const nlohmann::json& j : profile_records(report)) log_->write(j);
}

}  // namespace dsc
