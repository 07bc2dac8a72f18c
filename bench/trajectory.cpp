// trajectory: the first training steps of the seed's CNN on real CIFAR-10 images, written out so
// that bench/torch_trajectory.py can replay them in PyTorch from the same initial weights on the
// same batches and compare the losses step by step. Both frameworks implement the same recipe
// (Adam 1e-3, x/127.5 - 1, BatchNorm momentum 0.99 / eps 1e-3); if the losses agree to float
// rounding for the first steps and drift only slowly afterwards, the two trainings are the same
// algorithm, and any difference in final accuracy is seed noise.
//   trajectory --model depsep --steps 40 --out DIR [--batch 128] [--seed 0] [--data PATH]
// DIR gets params.bin (the initial parameters, f32, in parameters() order), params.json (names
// and shapes), images.bin (steps * batch images, uint8 CHW), labels.bin (uint8), ours.jsonl
// (one line per step: step, loss, accuracy of the batch), test_images.bin / test_labels.bin (the
// test split) and ours_final.json (BatchNorm's running statistics after the steps, and the test
// loss and accuracy in eval mode), so that evaluation is compared too.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/gemm.h"
#include "data/cifar10.h"
#include "layers/models.h"
#include "optim/optimizer.h"

namespace {
void write_bytes(const std::filesystem::path& p, const void* data, size_t bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(bytes));
  if (!f) throw dsc::Error("cannot write '" + p.string() + "'");
}
}  // namespace

int main(int argc, char** argv) {
  std::string model = "depsep", data_flag, out;
  int steps = 40, batch = 128, threads = 0;
  uint64_t seed = 0;
  CLI::App app{"First training steps on real data, written out for bench/torch_trajectory.py"};
  app.add_option("--model", model, "normal | depsep")->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "initial weights and the choice of images")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0 = all)")->capture_default_str();
  app.add_option("--data", data_flag, "CIFAR-10 folder (default: as train)");
  app.add_option("--out", out, "folder to write (created)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    dsc::cpu::set_num_threads(threads);
    const dsc::data::Dataset train =
        dsc::data::load_cifar10(dsc::data::resolve_data_path(data_flag), dsc::data::Split::kTrain);
    const int64_t n = int64_t(steps) * batch;
    DSC_CHECK(n <= train.n, "trajectory: --steps x --batch = ", n, " images, the set has ",
              train.n);
    std::vector<int64_t> order(train.n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 pick(seed + 1000);
    std::shuffle(order.begin(), order.end(), pick);
    std::vector<uint8_t> images(size_t(n) * dsc::data::kImageBytes), labels(n);
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(train.image(order[i]), dsc::data::kImageBytes,
                  images.begin() + i * dsc::data::kImageBytes);
      labels[i] = train.labels[order[i]];
    }
    const dsc::data::Dataset test =
        dsc::data::load_cifar10(dsc::data::resolve_data_path(data_flag), dsc::data::Split::kTest);
    const std::filesystem::path dir(out);
    std::filesystem::create_directories(dir);
    write_bytes(dir / "images.bin", images.data(), images.size());
    write_bytes(dir / "labels.bin", labels.data(), labels.size());
    write_bytes(dir / "test_images.bin", test.pixels.data(), test.pixels.size());
    write_bytes(dir / "test_labels.bin", test.labels.data(), test.labels.size());

    auto net = dsc::make_seed_cnn(dsc::parse_model_kind(model), seed);
    std::vector<float> flat;
    nlohmann::json meta = nlohmann::json::array();
    for (const dsc::NamedTensor& p : net->parameters()) {
      for (double v : p.tensor.to_vector()) flat.push_back(float(v));
      meta.push_back({{"name", p.name}, {"shape", p.tensor.shape()}});
    }
    write_bytes(dir / "params.bin", flat.data(), flat.size() * sizeof(float));
    std::ofstream(dir / "params.json") << nlohmann::json{{"model", model}, {"params", meta}}.dump(1);

    dsc::Adam opt(*net);
    std::ofstream log(dir / "ours.jsonl");
    for (int s = 0; s < steps; ++s) {
      std::vector<double> x(size_t(batch) * dsc::data::kImageBytes), y(batch);
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = images[size_t(s) * batch * dsc::data::kImageBytes + i] / 127.5 - 1.0;
      for (int i = 0; i < batch; ++i) y[i] = labels[size_t(s) * batch + i];
      const dsc::Tensor xt = dsc::Tensor::from(x, {batch, 3, 32, 32});
      const dsc::Tensor yt = dsc::Tensor::from(y, {batch}, dsc::DType::I32);
      opt.zero_grad();
      dsc::Tensor logits = net->forward(xt);
      dsc::Tensor loss = dsc::ops::cross_entropy(logits, yt);
      loss.backward();
      opt.step();
      const nlohmann::json rec = {{"step", s + 1},
                                  {"loss", loss.item()},
                                  {"acc", double(dsc::ops::count_correct(logits, yt)) / batch}};
      log << rec.dump() << "\n";
      std::cout << rec.dump() << "\n";
    }
    // Eval mode on the test split, in chunks of 1000.
    dsc::NoGradGuard no_grad;
    net->eval();
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < test.n; i += 1000) {
      const int64_t m = std::min<int64_t>(1000, test.n - i);
      std::vector<double> x(size_t(m) * dsc::data::kImageBytes), y(m);
      for (size_t j = 0; j < x.size(); ++j)
        x[j] = test.pixels[size_t(i) * dsc::data::kImageBytes + j] / 127.5 - 1.0;
      for (int64_t j = 0; j < m; ++j) y[j] = test.labels[i + j];
      const dsc::Tensor xt = dsc::Tensor::from(x, {m, 3, 32, 32});
      const dsc::Tensor yt = dsc::Tensor::from(y, {m}, dsc::DType::I32);
      dsc::Tensor logits = net->forward(xt);
      loss_sum += dsc::ops::cross_entropy(logits, yt).item() * double(m);
      correct += dsc::ops::count_correct(logits, yt);
    }
    nlohmann::json final_rec = {{"test_loss", loss_sum / double(test.n)},
                                {"test_acc", double(correct) / double(test.n)}};
    for (const dsc::NamedTensor& b : net->buffers()) final_rec[b.name] = b.tensor.to_vector();
    std::ofstream(dir / "ours_final.json") << final_rec.dump();
    std::cout << "eval: test loss " << final_rec["test_loss"] << " acc " << final_rec["test_acc"]
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
