// draws: the random draws `train --seed S` starts from, for many seeds, written out so that
// bench/torch_draws.py can compare their distribution with PyTorch's: the initial parameters of
// the seed's CNN (make_seed_cnn: he_uniform with Keras' fans, zero biases) and the loader's image
// order of each epoch (data::epoch_order, what BatchLoader shuffles with).
//   draws --model depsep --seeds 200 --n 9984 --epochs 2 --out DIR
// DIR gets params.bin (f32 [seeds, P], parameters() order), orders.bin (int32 [seeds, epochs, n])
// and meta.json (model, parameter names and shapes, seeds, n, epochs).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/loader.h"
#include "layers/models.h"

int main(int argc, char** argv) {
  std::string model = "depsep", out;
  int seeds = 200, epochs = 2;
  int64_t n = 9984;
  CLI::App app{"Initial parameters and epoch orders of many seeds, for bench/torch_draws.py"};
  app.add_option("--model", model, "normal | depsep")->capture_default_str();
  app.add_option("--seeds", seeds, "seeds 0 .. N-1")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--n", n, "images per epoch")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--out", out, "folder to write (created)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    const std::filesystem::path dir(out);
    std::filesystem::create_directories(dir);
    std::ofstream params(dir / "params.bin", std::ios::binary);
    std::ofstream orders(dir / "orders.bin", std::ios::binary);
    nlohmann::json names = nlohmann::json::array();
    for (int s = 0; s < seeds; ++s) {
      auto net = dsc::make_seed_cnn(dsc::parse_model_kind(model), uint64_t(s));
      for (const dsc::NamedTensor& p : net->parameters()) {
        if (s == 0) names.push_back({{"name", p.name}, {"shape", p.tensor.shape()}});
        std::vector<float> v;
        for (double x : p.tensor.to_vector()) v.push_back(float(x));
        params.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
      }
      for (int e = 0; e < epochs; ++e) {
        std::vector<int32_t> o;
        for (int64_t k : dsc::data::epoch_order(n, uint64_t(s), e, true)) o.push_back(int32_t(k));
        orders.write(reinterpret_cast<const char*>(o.data()), std::streamsize(o.size() * 4));
      }
    }
    DSC_CHECK(params && orders, "draws: cannot write into '", out, "'");
    std::ofstream(dir / "meta.json") << nlohmann::json{{"model", model}, {"params", names},
                                                       {"seeds", seeds}, {"n", n},
                                                       {"epochs", epochs}}
                                            .dump(1);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
