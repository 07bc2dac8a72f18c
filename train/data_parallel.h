// The Trainer's side of data-parallel training (train/distributed.h is the engine): every rank
// holds the whole model and trains on its slice of each global batch (data::LoaderOptions::shard);
// the f32 gradient buffer is averaged across ranks, in buckets started while the backward still
// runs (set_buckets), so the optimizer makes the same update everywhere and the replicas stay
// identical — which every epoch checks (a CRC of each rank's weights).
// Metrics are sums over the ranks; evaluation splits the data set across the ranks and adds up.
// BatchNorm's running statistics (buffers, not trained) are rank 0's, broadcast before each
// evaluation; --sync-bn makes the batch statistics global.
// With one rank every call is the identity and costs nothing.
// Tested with `mpirun -np 2` in tests/dist/ (skipped without MPI).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/dataset.h"
#include "layers/module.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/step.h"

namespace dsc {

struct TrainConfig;

class DataParallel : public GradientReducer, private GradientHook {
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
  // Overlap: the flat gradient buffer `grads`, whose views are the gradients of `params` (in
  // buffer order), is averaged in buckets of whole parameters of at least `bytes` each (but the
  // one at the start, which takes what is left), made from the end of the buffer (the backward's
  // first gradients); a bucket starts as soon as the
  // backward has produced every gradient in it, and the buckets start in the same order on every
  // rank. bytes 0 (or a model smaller than two buckets): one average after the backward.
  void set_buckets(const std::vector<NamedTensor>& params, const Tensor& grads, int64_t bytes);
  // The buckets' sizes in elements, in buffer order (empty: one average after the backward).
  std::vector<int64_t> bucket_sizes() const;
  // For the run header: "gradients averaged in 4 buckets during the backward" or "... after".
  std::string describe_buckets() const;
  // GradientReducer: the loss of a rank is the mean over its slice, weighted by
  // local * ranks / global so that the average of the ranks' gradients is the global batch's
  // (1 when the slices are equal, as for every full batch).
  double loss_weight() const override { return weight_; }
  GradientHook* begin_backward() override;
  void reduce(Tensor& grads) override;
  // The time the steps since the last call spent in reduce(), summed over the steps (a
  // collective). In each step the rank that finished its backward last waits only for the part
  // of the average the backward did not hide: exposed_s sums that shortest wait; skew_s sums the
  // longest minus the shortest, time spent waiting for a slower rank. On a GPU reduce() only
  // queues the average, so both would measure the host: the Trainer reports them on the CPU.
  struct Waits {
    double exposed_s = 0, skew_s = 0;
  };
  Waits take_waits();

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
  // GradientHook: a parameter's gradient is final; then every ready bucket starts.
  void leaf_ready(const Tensor& leaf) override;
  void after_node() override { comm_.progress(); }
  void start_bucket(int b);
  // Test only: this rank's gradients overflow at the injected step.
  void inject_overflow(Tensor& grads);

  dist::Communicator& comm_;
  struct Bucket {
    int64_t begin, end;  // elements of the gradient buffer
    int params, pending;
  };
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, int> bucket_of_;  // parameter (Tensor::id) -> bucket
  Tensor grads_;
  int next_bucket_ = -1;       // the next to start: they start from the last
  std::vector<double> waits_;  // seconds in reduce(), one per step since take_waits()
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
