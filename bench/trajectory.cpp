// trajectory: the seed's CNN trained for a few epochs on real CIFAR-10 images exactly as `train`
// trains it (same initial weights from --seed, same class-balanced --limit-train subset, the
// loader's per-epoch shuffles, Adam 1e-3 / eps 1e-7, x/127.5 - 1, an evaluation of the test split
// in eval mode after every epoch), with everything written out so that bench/torch_trajectory.py
// can replay the same steps in PyTorch from the same weights on the same batches and compare the
// two runs step by step, across epoch boundaries and evaluations.
//   trajectory --model depsep --epochs 3 --limit-train 9984 --out DIR [--seed 0] [--batch 128]
//              [--steps S] [--limit-test N] [--orders FILE] [--init FILE] [--no-eval] [--data PATH]
// DIR gets params.bin (the initial parameters, f32, in parameters() order), params.json (names,
// shapes, recipe), images.bin / labels.bin (the training images, uint8 CHW, in data set order),
// orders.bin (int32 [epochs, n]: the image order of each epoch, as the loader produced it),
// test_images.bin / test_labels.bin, and ours.jsonl: one {"type": "step"} line per step (epoch,
// step, loss, acc of the batch) and one {"type": "epoch"} line per epoch (running loss and
// accuracy as `train` reports them, test loss and accuracy in eval mode, BatchNorm's running
// statistics after the epoch), and params_epoch<E>.bin (the parameters after epoch E, after its
// evaluation). --orders FILE trains on given orders instead of the loader's (for
// example PyTorch's randperm draws, bench/torch_trajectory.py --write-orders), --init FILE starts
// from given weights instead of our draw (PyTorch's: --write-init); --steps caps the
// steps of each epoch; --no-eval leaves out the evaluations (they must not change training).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/cpu/gemm.h"
#include "core/error.h"
#include "core/ops.h"
#include "data/cifar10.h"
#include "data/loader.h"
#include "layers/models.h"
#include "optim/optimizer.h"

namespace {

namespace fs = std::filesystem;
using dsc::data::kImageBytes;

void write_bytes(const fs::path& p, const void* data, size_t bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(bytes));
  if (!f) throw dsc::Error("cannot write '" + p.string() + "'");
}

std::vector<int32_t> read_orders(const std::string& path, int64_t n, int epochs) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  DSC_CHECK(f, "--orders: cannot read '", path, "'");
  const auto bytes = int64_t(f.tellg());
  DSC_CHECK(bytes == n * epochs * int64_t(sizeof(int32_t)), "--orders: '", path, "' holds ",
            bytes, " bytes, ", epochs, " epochs of ", n, " int32 indices need ",
            n * epochs * int64_t(sizeof(int32_t)));
  std::vector<int32_t> orders(size_t(n) * epochs);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(orders.data()), bytes);
  for (int e = 0; e < epochs; ++e) {  // each epoch a permutation of 0..n-1
    std::vector<bool> seen(n, false);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t k = orders[size_t(e) * n + i];
      DSC_CHECK(k >= 0 && k < n && !seen[k], "--orders: epoch ", e + 1, " is not a permutation");
      seen[k] = true;
    }
  }
  return orders;
}

// --init FILE: f32 values of every parameter, in parameters() order.
void load_init(dsc::Module& net, const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  DSC_CHECK(f, "--init: cannot read '", path, "'");
  std::vector<float> flat(size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(flat.data()), std::streamsize(flat.size() * sizeof(float)));
  size_t off = 0;
  for (dsc::NamedTensor& p : net.parameters()) {
    const auto n = size_t(p.tensor.numel());
    DSC_CHECK(off + n <= flat.size(), "--init: '", path, "' is too short for ", p.name);
    p.tensor.copy_(dsc::Tensor::from(std::vector<double>(flat.begin() + off, flat.begin() + off + n),
                                     p.tensor.shape()));
    off += n;
  }
  DSC_CHECK(off == flat.size(), "--init: '", path, "' holds ", flat.size(), " values, the model ",
            off);
}

// The batch of images order[begin, begin + m) as the loader builds it.
void gather(const dsc::data::Dataset& ds, const int32_t* order, int64_t m,
            const dsc::data::NormalizeTable& table, std::vector<float>& x, std::vector<int32_t>& y) {
  x.resize(size_t(m) * kImageBytes);
  y.resize(m);
  std::vector<int64_t> idx(order, order + m);
  dsc::data::make_batch(ds, idx, table, false, 0, x.data(), y.data());
}

struct Eval {
  double loss = 0, acc = 0;
};

// What `train` does after an epoch: the test split in eval mode without gradients, batches of
// 500 in data set order, then back to training mode.
Eval evaluate(dsc::Module& model, const dsc::data::Dataset& test) {
  dsc::NoGradGuard no_grad;
  model.eval();
  dsc::data::LoaderOptions lo;
  lo.batch_size = int(std::min<int64_t>(500, test.n));
  lo.shuffle = false;
  dsc::data::BatchLoader loader(test, lo);
  loader.start_epoch(0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (dsc::data::BatchView b; loader.next(b);) {
    dsc::Tensor x = dsc::Tensor::empty({b.size, 3, 32, 32});
    dsc::Tensor y = dsc::Tensor::empty({b.size}, dsc::DType::I32);
    std::copy_n(b.images, x.numel(), x.data<float>());
    std::copy_n(b.labels, b.size, y.data<int32_t>());
    const dsc::Tensor logits = model.forward(x);
    loss_sum += dsc::ops::cross_entropy(logits, y).item() * b.size;
    correct += dsc::ops::count_correct(logits, y);
  }
  model.train();
  return {loss_sum / double(test.n), double(correct) / double(test.n)};
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "depsep", data_flag, out, orders_file, init_file;
  int epochs = 1, batch = 128, threads = 0;
  int64_t steps = 0, limit_train = 0, limit_test = 0;
  uint64_t seed = 0;
  bool no_eval = false;
  CLI::App app{"Epochs of `train` on real data, written out for bench/torch_trajectory.py"};
  app.add_option("--model", model, "normal | depsep")->capture_default_str();
  app.add_option("--epochs", epochs)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "at most this many steps per epoch (0 = all)")
      ->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "initial weights and shuffles, as train --seed")
      ->capture_default_str();
  app.add_option("--limit-train", limit_train, "class-balanced subset, as train (0 = all)")
      ->capture_default_str();
  app.add_option("--limit-test", limit_test, "as train (0 = all)")->capture_default_str();
  app.add_option("--orders", orders_file, "int32 [epochs, n] image orders to train on");
  app.add_option("--init", init_file, "f32 initial parameters (parameters() order) to start from");
  app.add_flag("--no-eval", no_eval, "no evaluation between epochs");
  app.add_option("--threads", threads, "CPU threads (0 = all)")->capture_default_str();
  app.add_option("--data", data_flag, "CIFAR-10 folder (default: as train)");
  app.add_option("--out", out, "folder to write (created)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    dsc::cpu::set_num_threads(threads);
    const std::string path = dsc::data::resolve_data_path(data_flag);
    dsc::data::Dataset train = dsc::data::load_cifar10(path, dsc::data::Split::kTrain);
    dsc::data::Dataset test = dsc::data::load_cifar10(path, dsc::data::Split::kTest);
    if (limit_train > 0) train = dsc::data::subset(train, limit_train);
    if (limit_test > 0) test = dsc::data::subset(test, limit_test);
    const int64_t n = train.n;

    // The orders: the loader's (train's) or the given ones.
    std::vector<int32_t> orders;
    if (!orders_file.empty()) {
      orders = read_orders(orders_file, n, epochs);
    } else {
      for (int e = 0; e < epochs; ++e)
        for (int64_t k : dsc::data::epoch_order(n, seed, e, true)) orders.push_back(int32_t(k));
    }

    const fs::path dir(out);
    fs::create_directories(dir);
    write_bytes(dir / "images.bin", train.pixels.data(), train.pixels.size());
    write_bytes(dir / "labels.bin", train.labels.data(), train.labels.size());
    write_bytes(dir / "orders.bin", orders.data(), orders.size() * sizeof(int32_t));
    write_bytes(dir / "test_images.bin", test.pixels.data(), test.pixels.size());
    write_bytes(dir / "test_labels.bin", test.labels.data(), test.labels.size());

    auto net = dsc::make_seed_cnn(dsc::parse_model_kind(model), seed);
    if (!init_file.empty()) load_init(*net, init_file);
    std::vector<float> flat;
    nlohmann::json meta = nlohmann::json::array();
    for (const dsc::NamedTensor& p : net->parameters()) {
      for (double v : p.tensor.to_vector()) flat.push_back(float(v));
      meta.push_back({{"name", p.name}, {"shape", p.tensor.shape()}});
    }
    write_bytes(dir / "params.bin", flat.data(), flat.size() * sizeof(float));
    std::ofstream(dir / "params.json") << nlohmann::json{{"model", model},
                                                         {"params", meta},
                                                         {"epochs", epochs},
                                                         {"batch", batch},
                                                         {"steps_per_epoch", steps},
                                                         {"eval", !no_eval},
                                                         {"eval_batch", 500},
                                                         {"seed", seed},
                                                         {"n_train", n},
                                                         {"n_test", test.n}}
                                              .dump(1);

    // As train: Adam with Keras' arithmetic, the loader's normalisation (x/127.5 - 1).
    dsc::Adam opt(*net, dsc::AdamOptions{1e-3f, 0.9f, 0.999f, 1e-7f, 0.0f});
    const dsc::data::NormalizeTable table = dsc::data::make_normalize_table({});
    std::ofstream log(dir / "ours.jsonl");
    std::vector<float> x;
    std::vector<int32_t> y;
    int64_t global = 0;
    for (int e = 0; e < epochs; ++e) {
      net->train();
      const int64_t batches = (n + batch - 1) / batch;
      const int64_t run = steps > 0 ? std::min(steps, batches) : batches;
      double loss_sum = 0;
      int64_t correct = 0, seen = 0;
      for (int64_t s = 0; s < run; ++s) {
        const int64_t m = std::min<int64_t>(batch, n - s * batch);
        gather(train, orders.data() + size_t(e) * n + s * batch, m, table, x, y);
        dsc::Tensor xt = dsc::Tensor::empty({m, 3, 32, 32});
        dsc::Tensor yt = dsc::Tensor::empty({m}, dsc::DType::I32);
        std::copy(x.begin(), x.end(), xt.data<float>());
        std::copy(y.begin(), y.end(), yt.data<int32_t>());
        opt.zero_grad();
        const dsc::Tensor logits = net->forward(xt);
        dsc::Tensor loss = dsc::ops::cross_entropy(logits, yt);
        loss.backward();
        opt.step();
        const int64_t right = dsc::ops::count_correct(logits, yt);
        loss_sum += loss.item() * double(m);
        correct += right;
        seen += m;
        log << nlohmann::json{{"type", "step"},        {"epoch", e + 1},
                              {"step", ++global},      {"loss", loss.item()},
                              {"acc", double(right) / double(m)}}
                   .dump()
            << "\n";
      }
      nlohmann::json rec = {{"type", "epoch"},
                            {"epoch", e + 1},
                            {"steps", run},
                            {"train_loss", loss_sum / double(seen)},
                            {"train_acc", double(correct) / double(seen)}};
      if (!no_eval) {
        const Eval ev = evaluate(*net, test);
        rec["test_loss"] = ev.loss;
        rec["test_acc"] = ev.acc;
      }
      for (const dsc::NamedTensor& b : net->buffers()) rec[b.name] = b.tensor.to_vector();
      std::vector<float> now;
      for (const dsc::NamedTensor& p : net->parameters())
        for (double v : p.tensor.to_vector()) now.push_back(float(v));
      write_bytes(dir / ("params_epoch" + std::to_string(e + 1) + ".bin"), now.data(),
                  now.size() * sizeof(float));
      log << rec.dump() << "\n" << std::flush;
      std::cout << "epoch " << e + 1 << ": running loss " << rec["train_loss"] << " acc "
                << rec["train_acc"];
      if (!no_eval) std::cout << ", test loss " << rec["test_loss"] << " acc " << rec["test_acc"];
      std::cout << "\n" << std::flush;
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
