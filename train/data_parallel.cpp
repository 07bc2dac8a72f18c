// Data-parallel training, the Trainer's side (see data_parallel.h).
#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <limits>
#include <ostream>
#include <streambuf>

#include "core/error.h"
#include "data/cifar10.h"
#include "layers/checkpoint.h"
#include "layers/layers.h"
#include "train/trainer.h"

namespace dsc {
namespace {

// Images [begin, end) of ds, a new data set.
data::Dataset slice(const data::Dataset& ds, int64_t begin, int64_t end) {
  data::Dataset part;
  part.n = end - begin;
  part.pixels.assign(ds.image(begin), ds.image(begin) + part.n * data::kImageBytes);
  part.labels.assign(ds.labels.begin() + begin, ds.labels.begin() + end);
  part.class_names = ds.class_names;
  part.split = ds.split;
  part.source = ds.source;
  part.format = ds.format;
  return part;
}

void for_each_batch_norm(Module& m, const std::function<void(BatchNorm2d&)>& fn) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) fn(*bn);
  for (const auto& [name, child] : m.children()) for_each_batch_norm(*child, fn);
}

struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

}  // namespace

void DataParallel::validate(const TrainConfig& c, int64_t train_images) const {
  const int n = size();
  DSC_CHECK(!c.sync_bn || n > 1,
            "--sync-bn needs several ranks (e.g. mpirun -np 2 train ...): one process has "
            "nothing to synchronise");
  if (n == 1) return;
  DSC_CHECK(c.batch % n == 0, "--batch ", c.batch, " is the global batch and must be divisible ",
            "by the ", n, " ranks (each takes batch / ranks images of it)");
  const int64_t last = train_images % c.batch;
  DSC_CHECK(last == 0 || last >= n, "--limit-train: the last batch of the epoch would have ", last,
            " images, fewer than the ", n, " ranks; choose a training set size with no ",
            "remainder or one of at least ", n);
}

DataParallel::DataParallel(dist::Communicator& comm)
    : comm_(comm),
      crash_step_(dist::test_injection_step("DSC_TEST_INJECT_CRASH", comm.rank())),
      error_step_(dist::test_injection_step("DSC_TEST_INJECT_ERROR", comm.rank())),
      overflow_step_(dist::test_injection_step("DSC_TEST_INJECT_OVERFLOW", comm.rank())) {}

void DataParallel::begin_step(int64_t run_step, int local, int global) {
  step_ = run_step;
  weight_ = local * size() == global ? 1.0 : double(local) * size() / double(global);
  if (step_ == crash_step_) std::raise(SIGKILL);
  DSC_CHECK(step_ != error_step_, "DSC_TEST_INJECT_ERROR: an error injected at step ", step_,
            " (test only)");
}

void DataParallel::set_buckets(const std::vector<NamedTensor>& params, const Tensor& grads,
                               int64_t bytes) {
  DSC_CHECK(bytes >= 0, "gradient buckets of ", bytes, " bytes");
  buckets_.clear();
  bucket_of_.clear();
  grads_ = grads;
  if (bytes == 0) return;
  // From the last parameter back: a bucket closes once it holds `bytes`.
  int64_t end = grads.numel();
  Bucket open{end, end, 0, 0};
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const Tensor g = it->tensor.grad();
    DSC_CHECK(g.defined() && g.storage() == grads.storage() &&
                  int64_t(g.offset() - grads.offset()) + g.numel() == open.begin,
              "data parallel: the gradient of ", it->name,
              " is not the next slice of the flat gradient buffer");
    open.begin -= g.numel();
    if (it->tensor.requires_grad()) {  // a frozen parameter's gradient is never produced
      ++open.params;
      bucket_of_[it->tensor.id()] = -1 - int(buckets_.size());  // counted from the end for now
    }
    if ((open.end - open.begin) * int64_t(sizeof(float)) >= bytes) {
      buckets_.push_back(open);
      open = Bucket{open.begin, open.begin, 0, 0};
    }
  }
  DSC_CHECK(open.begin == 0, "data parallel: the parameters do not cover the gradient buffer");
  if (open.end > open.begin) buckets_.push_back(open);
  if (buckets_.size() < 2) {  // nothing to overlap
    buckets_.clear();
    bucket_of_.clear();
    return;
  }
  std::reverse(buckets_.begin(), buckets_.end());  // buffer order
  const int n = int(buckets_.size());
  for (auto& [id, b] : bucket_of_) b = n + b;  // -1 - k (k-th from the end) -> n - 1 - k
}

std::vector<int64_t> DataParallel::bucket_sizes() const {
  std::vector<int64_t> sizes;
  for (const Bucket& b : buckets_) sizes.push_back(b.end - b.begin);
  return sizes;
}

std::string DataParallel::describe_buckets() const {
  return buckets_.empty() ? "gradients averaged after the backward"
                          : "gradients averaged in " + std::to_string(buckets_.size()) +
                                " buckets during the backward";
}

GradientHook* DataParallel::begin_backward() {
  if (buckets_.empty()) return nullptr;
  for (Bucket& b : buckets_) b.pending = b.params;
  next_bucket_ = int(buckets_.size()) - 1;
  return this;
}

void DataParallel::leaf_ready(const Tensor& leaf) {
  const auto found = bucket_of_.find(leaf.id());
  if (found == bucket_of_.end()) return;  // not a parameter of the buffer
  --buckets_[found->second].pending;
  // In buffer order from the end, so that every rank starts them in the same order.
  while (next_bucket_ >= 0 && buckets_[next_bucket_].pending == 0) start_bucket(next_bucket_--);
}

void DataParallel::start_bucket(int b) {
  Tensor part = grads_.slice0(buckets_[b].begin, buckets_[b].end);
  inject_overflow(part);
  comm_.start_allreduce_mean(part);
}

void DataParallel::inject_overflow(Tensor& grads) {
  // The slice holding the buffer's first element overflows (the loss-scale check then finds it
  // in the sum of every rank).
  if (step_ != overflow_step_ || grads.raw() != grads_.raw()) return;
  Tensor first = grads.slice0(0, 1);
  first.fill_(std::numeric_limits<double>::infinity());
}

void DataParallel::reduce(Tensor& grads) {
  const auto t0 = std::chrono::steady_clock::now();
  if (buckets_.empty()) {
    grads_ = grads;
    inject_overflow(grads);
    comm_.allreduce_mean(grads);
  } else {
    DSC_CHECK(grads.raw() == grads_.raw(), "data parallel: reduce() of another gradient buffer");
    while (next_bucket_ >= 0) start_bucket(next_bucket_--);  // those no gradient reached
    comm_.wait_all();
  }
  waits_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

DataParallel::Waits DataParallel::take_waits() {
  // Every rank's waits in its own slots, zeros elsewhere: the sum is a gather. The ranks agree on
  // the length first (a rank whose steps were replayed from a graph called reduce() less often).
  const size_t steps = size_t(max(int(waits_.size()))), n = size_t(size());
  waits_.resize(steps, 0.0);
  std::vector<double> all(steps * n, 0.0);
  std::copy(waits_.begin(), waits_.end(), all.begin() + ptrdiff_t(steps * size_t(rank())));
  waits_.clear();
  sum(all);
  Waits w;
  for (size_t s = 0; s < steps; ++s) {
    double lo = all[s], hi = all[s];
    for (size_t r = 1; r < n; ++r) {
      lo = std::min(lo, all[r * steps + s]);
      hi = std::max(hi, all[r * steps + s]);
    }
    w.exposed_s += lo;
    w.skew_s += hi - lo;
  }
  return w;
}

void DataParallel::sum(std::vector<double>& values) {
  comm_.allreduce_sum(values.data(), int64_t(values.size()));
}

int DataParallel::max(int value) {
  double v = value;
  comm_.allreduce_max(&v, 1);
  return int(v);
}

int DataParallel::sync_batch_norm(Module& model) {
  int layers = 0;
  dist::Communicator* comm = &comm_;
  for_each_batch_norm(model, [&](BatchNorm2d& bn) {
    bn.set_sync([comm](Tensor& sums) { comm->allreduce_sum(sums); });
    ++layers;
  });
  return layers;
}

void DataParallel::broadcast_buffers(Module& model) {
  if (!active()) return;
  for (NamedTensor& b : model.buffers()) comm_.broadcast(b.tensor, 0);
}

EvalResult DataParallel::evaluate(const data::Dataset& ds,
                                  const std::function<EvalResult(const data::Dataset&)>& eval) {
  if (!active()) return eval(ds);
  const int64_t begin = ds.n * rank() / size(), end = ds.n * (rank() + 1) / size();
  std::vector<double> sums(3, 0.0);  // loss x images, correct, images
  if (end > begin) {
    const EvalResult r = eval(slice(ds, begin, end));
    sums = {r.loss * double(end - begin), r.acc * double(end - begin), double(end - begin)};
  }
  sum(sums);
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

EvalResult DataParallel::epoch_metrics(const DeviceTally& tally) {
  const std::vector<NamedTensor> state = tally.state();
  std::vector<double> sums = {state[0].tensor.item(), state[1].tensor.item(),
                              double(tally.seen())};
  sum(sums);
  if (sums[2] == 0) return {0, 0};
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

std::vector<std::string> DataParallel::gather(const std::string& mine) {
  std::vector<std::string> all(size());
  for (int r = 0; r < size(); ++r) {
    char buf[256] = {};
    if (r == rank()) mine.copy(buf, sizeof buf - 1);
    comm_.broadcast(buf, sizeof buf, r);
    all[r] = buf;
  }
  return all;
}

std::vector<uint32_t> DataParallel::check_replicas(const Tensor& values) {
  const Tensor h = values.device() == Device::CPU ? values : values.to(Device::CPU);
  std::vector<double> crcs(size(), 0.0);
  crcs[rank()] = crc32(h.raw(), h.nbytes());
  sum(crcs);
  std::vector<uint32_t> out(crcs.begin(), crcs.end());
  for (int r = 1; r < size(); ++r)
    DSC_CHECK(out[r] == out[0], "data-parallel replicas diverged: rank ", r,
              "'s weights differ from rank 0's (CRC-32 ", out[r], " vs ", out[0], ")");
  return out;
}

RankSums::RankSums(DataParallel& dp, DeviceTally& tally) : tally_(tally) {
  std::vector<NamedTensor> sums = tally.state();
  mine_ = {sums[0].tensor.item(), sums[1].tensor.item(), double(tally.seen())};
  // Every rank's three values in its own slots, zeros elsewhere: the sum is a gather (x + 0 is
  // exact); the totals are then added up from it in rank order (no second collective).
  each_.assign(size_t(3) * dp.size(), 0.0);
  for (int i = 0; i < 3; ++i) each_[size_t(3) * dp.rank() + i] = mine_[i];
  dp.sum(each_);
  std::vector<double> all(3, 0.0);
  for (int r = 0; r < dp.size(); ++r)
    for (int i = 0; i < 3; ++i) all[i] += each_[size_t(3) * r + i];
  sums[0].tensor.fill_(all[0]);
  sums[1].tensor.fill_(all[1]);
  tally.set_seen(int64_t(all[2]));
}

void RankSums::restore(const DataParallel& dp, DeviceTally& tally,
                       const std::vector<double>& each) {
  if (each.size() == size_t(3) * dp.size()) {
    const double* mine = each.data() + size_t(3) * dp.rank();
    std::vector<NamedTensor> sums = tally.state();
    sums[0].tensor.fill_(mine[0]);
    sums[1].tensor.fill_(mine[1]);
    tally.set_seen(int64_t(mine[2]));
  } else if (dp.rank() != 0) {
    tally.reset();
    tally.set_seen(0);
  }
}

RankSums::~RankSums() {
  std::vector<NamedTensor> sums = tally_.state();
  sums[0].tensor.fill_(mine_[0]);
  sums[1].tensor.fill_(mine_[1]);
  tally_.set_seen(int64_t(mine_[2]));
}

int train_on_every_rank(const TrainConfig& config, std::ostream& out, std::ostream& err) {
  dist::Communicator& w = dist::world();
  if (w.size() == 1) {
    Trainer(config, out).run();
    return 0;
  }
  NullBuffer null_buffer;
  std::ostream silent(&null_buffer);
  std::unique_ptr<Trainer> trainer;
  std::string setup_error;
  try {
    trainer = std::make_unique<Trainer>(config, w.rank() == 0 ? out : silent);
  } catch (const std::exception& e) {  // dsc::Error, data::DataError
    setup_error = e.what();
  }
  // The lowest rank that failed (every rank usually fails alike: bad flags) prints it, once.
  double first = setup_error.empty() ? -double(w.size()) : -double(w.rank());
  w.allreduce_max(&first, 1);
  if (-first < w.size()) {
    if (-first == w.rank())
      err << "error: " << (w.rank() == 0 ? "" : "rank " + std::to_string(w.rank()) + ": ")
          << setup_error << "\n";
    return 1;
  }
  try {
    trainer->run();
  } catch (const TrainingInterrupted&) {
    throw;
  } catch (const std::exception& e) {
    w.abort("error: rank " + std::to_string(w.rank()) + " of " + std::to_string(w.size()) + ": " +
                e.what() + " (every rank stops)",
            1);
  }
  return 0;
}

}  // namespace dsc
