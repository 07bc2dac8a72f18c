// The model registry (see model_registry.h). The seed's models are added by an explicit call the
// first time the registry is used (no static initialisers).
#include "layers/model_registry.h"

#include <map>
#include <mutex>

#include "core/error.h"
#include "layers/models.h"

namespace dsc {
namespace {

struct Entry {
  std::string description;
  ModelFactory factory;
};

void add(std::map<std::string, Entry>& models, const std::string& name,
         const std::string& description, ModelFactory factory) {
  DSC_CHECK(!name.empty() && name.find_first_of(" \t\n") == std::string::npos,
            "register_model: a model name must be one non-empty word, got '", name, "'");
  DSC_CHECK(factory != nullptr, "register_model: '", name, "' has no factory");
  DSC_CHECK(models.count(name) == 0, "register_model: a model named '", name,
            "' is already registered");
  models.emplace(name, Entry{description, std::move(factory)});
}

struct Registry {
  std::mutex mu;
  std::map<std::string, Entry> models;
  Registry() {
    for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
      add(models, model_kind_name(kind),
          kind == ModelKind::Normal ? "the seed's CNN: 4 x 3x3 convolution (128 filters)"
                                    : "the seed's CNN: 4 x depthwise-separable 3x3 (128 filters)",
          [kind](const ModelSpec& s) -> std::shared_ptr<Module> {
            SeedCnnOptions opt;
            opt.in_channels = s.in_channels;
            opt.image = s.image;
            opt.classes = s.classes;
            return make_seed_cnn(kind, s.seed, opt);
          });
    }
  }
};

Registry& registry() {
  static Registry r;  // the built-in models are added on first use
  return r;
}

}  // namespace

void register_model(const std::string& name, const std::string& description,
                    ModelFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  add(r.models, name, description, std::move(factory));
}

bool model_registered(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.models.count(name) != 0;
}

std::shared_ptr<Module> make_model(const std::string& name, const ModelSpec& spec) {
  ModelFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.models.find(name);
    if (it == r.models.end()) {
      std::string known;
      for (const auto& [n, e] : r.models) known += (known.empty() ? "" : ", ") + n;
      throw Error(detail::cat("--model: unknown model '", name, "' (registered: ", known, ")"));
    }
    factory = it->second.factory;
  }
  std::shared_ptr<Module> m = factory(spec);
  DSC_CHECK(m != nullptr, "model '", name, "': its factory returned no model");
  return m;
}

std::vector<std::pair<std::string, std::string>> registered_models() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, e] : r.models) out.emplace_back(n, e.description);
  return out;
}

}  // namespace dsc
