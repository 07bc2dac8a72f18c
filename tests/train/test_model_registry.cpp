// The model registry (layers/model_registry.h): the seed's models are there under their names
// with Keras' parameter counts; a user model registered by one call is built from its spec and
// trains through train_main with every flag, its log readable by compare; bad registrations and
// unknown names are clear errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "layers/layers.h"
#include "layers/model_registry.h"
#include "train/run_log.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace dsc;

namespace {

// A user's model, as a program outside the library would write it: conv, pool, linear.
std::shared_ptr<Module> make_tiny(const ModelSpec& s) {
  std::mt19937_64 rng(s.seed);
  auto m = std::make_shared<Sequential>();
  m->add("conv", std::make_shared<Conv2d>(s.in_channels, 8, 3,
                                          Conv2dOptions{1, 1, true, Activation::ReLU}, rng));
  m->add("pool", std::make_shared<MaxPool2d>(8));
  m->add("flatten", std::make_shared<Flatten>());
  const int side = s.image / 8;
  m->add("fc", std::make_shared<Linear>(8 * side * side, s.classes, rng));
  return m;
}

void register_tiny_once() {
  if (!model_registered("tiny-test")) register_model("tiny-test", "a test model", make_tiny);
}

std::string real_data() {
  const std::string p = DSC_SOURCE_DIR "/../shared/cifar10";
  return fs::exists(p + "/train") ? p : "";
}

}  // namespace

TEST_CASE("model registry: the seed's models, Keras' parameter counts, same seed same weights") {
  CHECK(model_registered("normal"));
  CHECK(model_registered("depsep"));
  CHECK(count_parameters(*make_model("normal", ModelSpec{})).total == 528778);
  CHECK(count_parameters(*make_model("depsep", ModelSpec{})).total == 135973);
  ModelSpec spec;
  spec.seed = 7;
  const auto a = make_model("depsep", spec), b = make_model("depsep", spec);
  spec.seed = 8;
  const auto c = make_model("depsep", spec);
  CHECK(a->parameters()[0].tensor.to_vector() == b->parameters()[0].tensor.to_vector());
  CHECK(a->parameters()[0].tensor.to_vector() != c->parameters()[0].tensor.to_vector());
  bool listed = false;
  for (const auto& [name, description] : registered_models())
    listed = listed || (name == "depsep" && !description.empty());
  CHECK(listed);
}

TEST_CASE("model registry: user models, and the errors") {
  register_tiny_once();
  ModelSpec spec;
  spec.classes = 7;
  const auto m = make_model("tiny-test", spec);
  CHECK(count_parameters(*m).trainable == (8 * 3 * 3 * 3 + 8) + (8 * 4 * 4 * 7 + 7));
  CHECK_THROWS_WITH_AS(register_model("tiny-test", "again", make_tiny),
                       doctest::Contains("'tiny-test' is already registered"), Error);
  CHECK_THROWS_WITH_AS(register_model("two words", "", make_tiny),
                       doctest::Contains("must be one non-empty word"), Error);
  CHECK_THROWS_WITH_AS(register_model("", "", make_tiny),
                       doctest::Contains("must be one non-empty word"), Error);
  CHECK_THROWS_WITH_AS(register_model("no-factory", "", nullptr),
                       doctest::Contains("'no-factory' has no factory"), Error);
  CHECK_THROWS_WITH_AS(make_model("resnet", spec),
                       doctest::Contains("unknown model 'resnet' (registered: depsep, normal"),
                       Error);
  register_model("null-model", "returns nothing", [](const ModelSpec&) { return nullptr; });
  CHECK_THROWS_WITH_AS(make_model("null-model", spec),
                       doctest::Contains("model 'null-model': its factory returned no model"),
                       Error);
}

TEST_CASE("a registered user model trains through train_main with the usual flags and logs") {
  const std::string data = real_data();
  if (data.empty()) {
    MESSAGE("skipped: no CIFAR-10 at ../shared/cifar10");
    return;
  }
  register_tiny_once();
  const fs::path dir = fs::temp_directory_path() / ("dsc_test_registry_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string log = (dir / "tiny.jsonl").string();
  std::ostringstream help, none;
  REQUIRE(train_main({"--help"}, help, none) == 0);
  CHECK(help.str().find("tiny-test: a test model") != std::string::npos);
  std::ostringstream out, err;
  const int rc = train_main({"--model", "tiny-test", "--data", data, "--limit-train", "640",
                             "--limit-test", "200", "--epochs", "3", "--batch", "32", "--lr", "0.003", "--log", log,
                             "--no-progress"},
                            out, err);
  REQUIRE_MESSAGE(rc == 0, err.str());
  CHECK(out.str().find("model      tiny-test: ") != std::string::npos);
  const std::vector<nlohmann::json> lines = read_run_log(log);
  REQUIRE(lines.size() == 5);  // header, 3 epochs, summary
  CHECK(lines[0]["model"] == "tiny-test");
  CHECK(lines[1]["train_loss"].get<double>() > lines[3]["train_loss"].get<double>());
  CHECK(lines[4]["test_acc"].get<double>() > 0.2);  // chance is 0.1
  CHECK(compare_runs({log}).find("| tiny-test |") != std::string::npos);
}
