// The Trainer's side of data-parallel training (train/distributed.h is the engine): every rank
// holds the whole model and trains on its slice of each global batch (data::LoaderOptions::shard);
// after the backward the f32 gradient buffer is averaged across ranks (with the mixed-precision
// inf/NaN flag: all ranks skip the same steps), so the optimizer makes the same update everywhere
// and the replicas stay identical — which every epoch checks (a CRC of each rank's weights).
// Metrics are sums over the ranks; evaluation splits the data set across the ranks and adds up.
// BatchNorm's running statistics (buffers, not trained) are rank 0's, broadcast before each
// evaluation, as PyTorch DDP's broadcast_buffers; --sync-bn makes the batch statistics global.
// With one rank every call is the identity and costs nothing.
// Tested with `mpirun -np 2` in tests/dist/ (skipped without MPI).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "layers/module.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/step.h"

namespace dsc {

struct TrainConfig;

class DataParallel : public GradientReducer {
 public:
  explicit DataParallel(dist::Communicator& comm);
  bool active() const { return comm_.size() > 1; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  dist::Communicator& comm() { return comm_; }

  // One-line errors before training for what cannot work across these ranks.
  void validate(const TrainConfig& config, int64_t train_images) const;
  // Before step `run_step` (counted from 1 over the run) with `local` of `global` images on this
  // rank; applies the test-only fault injection (distributed.h).
  void begin_step(int64_t run_step, int local, int global);
  // GradientReducer: the loss of a rank is the mean over its slice, weighted by
  // local * ranks / global so that the average of the ranks' gradients is the global batch's
  // (1 when the slices are equal, as for every full batch).
  double loss_weight() const override { return weight_; }
  void reduce(Tensor& grads, Tensor* found_inf) override;

  // In place, over the ranks.
  void sum(std::vector<double>& values);
  int max(int value);
  // --sync-bn: every BatchNorm2d of the model takes its training statistics over all ranks.
  // Returns how many layers it set.
  int sync_batch_norm(Module& model);
  // Rank 0's BatchNorm running statistics (every buffer) on every rank.
  void broadcast_buffers(Module& model);
  // `eval` on this rank's share of `ds` (a contiguous n / ranks), combined over the ranks.
  EvalResult evaluate(const data::Dataset& ds,
                      const std::function<EvalResult(const data::Dataset&)>& eval);
  // Mean loss and accuracy of an epoch over every rank's tally (loss x images, correct, images).
  EvalResult epoch_metrics(const DeviceTally& tally);
  // Every rank's string, in rank order (the run header's devices).
  std::vector<std::string> gather(const std::string& mine);
  // The CRC-32 of every rank's `values` (the flat parameter buffer), in rank order; throws
  // naming the first rank whose weights differ from rank 0's.
  std::vector<uint32_t> check_replicas(const Tensor& values);

 private:
  dist::Communicator& comm_;
  double weight_ = 1.0;
  int64_t step_ = 0;
  // Test-only fault injection (distributed.h): the step of this rank's injection, -1 for none.
  int64_t crash_step_, error_step_, overflow_step_;
};

// For a checkpoint taken inside an epoch: while alive, the tally of every rank holds the sums of
// all ranks (a collective: every rank makes one); the rank's own come back at the end. each()
// is every rank's own (loss sum, correct, images), in rank order: the checkpoint keeps them so
// that a run resumed on as many ranks gives each rank its own sums back, and the epoch's
// totals are added in the same order as without the interruption (restore()).
class RankSums {
 public:
  RankSums(DataParallel& dp, DeviceTally& tally);
  ~RankSums();
  RankSums(const RankSums&) = delete;
  RankSums& operator=(const RankSums&) = delete;
  const std::vector<double>& each() const { return each_; }
  // After the checkpoint's global sums were loaded into `tally` by every rank: this rank's own
  // from `each` (saved with as many ranks), else rank 0 keeps the totals and the others start
  // from zero.
  static void restore(const DataParallel& dp, DeviceTally& tally, const std::vector<double>& each);

 private:
  DeviceTally& tally_;
  std::vector<double> mine_, each_;
};

// train_main's run on every rank: the Trainer of `config`, where rank 0 prints to `out` and writes
// the logs and checkpoints and the other ranks stay silent. An error while setting up is agreed
// on by all ranks and printed once (by the lowest rank that had it) as "error: ..." (returns 1);
// an error while training ends every rank (MPI_Abort) after "error: rank R of N: ...". One rank:
// Trainer(config, out).run(). TrainingInterrupted passes through.
int train_on_every_rank(const TrainConfig& config, std::ostream& out, std::ostream& err);

}  // namespace dsc
