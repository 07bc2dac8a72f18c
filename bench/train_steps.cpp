// train_steps: times training steps (forward, backward, Adam update; with --precision amp also the
// dynamic loss scaling) of the seed's CNNs on random data, the way bench/torch_peer.py times PyTorch
// (which uses GradScaler for amp): warm-up excluded, median of repeats.
// With --graph on (a GPU) the step is captured once after the warm-up and every timed step is one
// replay of it (core/graph.h), as train does for full batches.
// Prints a line per repeat and one JSON line with the median (framework "ours"). With --profile,
// then a profile of the step (train/profile.h; eagerly, no step graph): the table on stderr and
// its "profile" JSON lines on stdout.
//   train_steps --model normal|depsep --batch 128 --threads 2 --warmup 3 --iters 5 --repeats 5
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/graph.h"
#include "core/ops.h"
#include "layers/model_registry.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "train/kernel_flags.h"
#include "train/profile.h"
#include "train/step.h"

int main(int argc, char** argv) {
  std::string model = "normal", device = "cpu", precision = "fp32", graph_mode = "off";
  int batch = 128, threads = 0, warmup = 3, iters = 5, repeats = 5;
  CLI::App app{"Time training steps of the seed's CNN on random data"};
  app.add_option("--model", model, "a registered model: normal | depsep")->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device", device, "cpu | cuda")->capture_default_str();
  app.add_option("--precision", precision, "fp32 | amp")->capture_default_str();
  app.add_option("--graph", graph_mode, "on | off: replay one captured step (GPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--threads", threads, "CPU threads (0 = all)")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--iters", iters, "steps per timed repeat")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "timed repeats (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  dsc::KernelFlags kernel_flags;
  dsc::add_kernel_flags(app, kernel_flags);
  dsc::ProfileOptions profile;
  dsc::add_profile_flags(app, profile);
  CLI11_PARSE(app, argc, argv);
  try {
    dsc::validate(profile);
    dsc::cpu::set_num_threads(threads);
    dsc::set_kernel_options(dsc::to_kernel_options(kernel_flags));
    const dsc::Device dev = device == "cuda" ? dsc::Device::CUDA : dsc::Device::CPU;
    const dsc::DType compute = precision == "amp" ? dsc::DType::F16 : dsc::DType::F32;
    auto net = dsc::make_model(model, dsc::ModelSpec{});
    net->to(dev);
    dsc::Adam opt(*net);
    std::mt19937_64 rng(1);
    dsc::Tensor x = dsc::Tensor::randn({batch, 3, 32, 32}, rng).to(dev);
    std::vector<double> labels(batch);
    for (double& l : labels) l = double(rng() % 10);
    dsc::Tensor y = dsc::Tensor::from(labels, {batch}, dsc::DType::I32).to(dev);
    // The step train runs (train/step.h): under AMP, dynamic loss scaling with the state on the
    // device (no host wait) and one cast of all parameters per forward.
    const bool amp = precision == "amp";
    dsc::LossScaler scaler(dsc::LossScalerOptions{.enabled = amp}, dev);
    dsc::TrainStep train_step(*net, opt, scaler, compute);
    auto step = [&] { train_step(x, y); };
    for (int i = 0; i < warmup; ++i) step();
    dsc::StepGraph graph(dev);
    if (graph_mode == "on") {
      if (warmup < 1) throw std::runtime_error("--graph on needs --warmup 1 or more");
      if (!graph.capture(step))
        throw std::runtime_error("--graph on: capturing the step failed: " + graph.failure());
    }
    const auto timed_step = [&] {
      if (graph.captured()) {
        graph.replay();
      } else {
        step();
      }
    };
    dsc::kernels(dev).synchronize();
    std::vector<double> ips;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) timed_step();
      dsc::kernels(dev).synchronize();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ips.push_back(double(batch) * iters / s);
      std::cerr << "repeat " << r + 1 << ": " << ips.back() << " img/s\n";
    }
    std::vector<double> sorted = ips;
    std::sort(sorted.begin(), sorted.end());
    const double med = sorted[sorted.size() / 2];
    nlohmann::json j = {{"framework", "ours"},     {"model", model},
                        {"device", device},        {"batch", batch},
                        {"precision", precision},  {"threads", dsc::cpu::num_threads()},
                        {"graph", graph_mode},
                        {"images_per_sec", med},   {"step_ms_median", 1000.0 * batch / med},
                        {"images_per_sec_all", ips}};
    if (dev == dsc::Device::CUDA) {
      j["kernels"] = dsc::describe(dsc::kernel_options());
      if (const auto report = dsc::kernels(dev).algorithm_report) j["algorithms"] = report();
    }
    std::cout << j.dump() << "\n";
    if (profile.enabled) {
      dsc::ProfileSetup s;
      s.model = model;
      s.precision = precision;
      s.device = dev;
      s.batch = batch;
      s.optimizer = &opt;
      s.step = [&](dsc::StepProfiler* p) {
        train_step.set_profiler(p);
        train_step(x, y);
        train_step.set_profiler(nullptr);
      };
      const dsc::ProfileReport report = dsc::run_profile(s, profile, std::cerr);
      std::cerr << dsc::format_profile(report);
      for (const nlohmann::json& r : dsc::profile_records(report)) std::cout << r.dump() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
