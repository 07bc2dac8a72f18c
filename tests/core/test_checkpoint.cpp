// Checkpoints (layers/checkpoint.h): CRC-32 against its published check value; both seed models
// saved and loaded into a model built from another seed (parameters, BatchNorm running
// statistics, optimizer's flat buffer and forward output bit-identical); dtype conversion on
// load; every load error's message, each leaving the module unchanged; atomic writes (a failing
// save keeps the previous checkpoint and leaves no .tmp file); the --save path probe.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/autograd.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "optim/optimizer.h"

namespace fs = std::filesystem;

namespace dsc {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("dsc_test_checkpoint_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// doctest's matcher copies the text, so a temporary std::string is fine.
doctest::Contains contains(const std::string& s) { return doctest::Contains(s.c_str()); }

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::vector<NamedTensor> all_tensors(const Module& m) {
  std::vector<NamedTensor> out = m.parameters();
  for (const NamedTensor& b : m.buffers()) out.push_back(b);
  return out;
}

// Host copies of every parameter and buffer, to check a module is unchanged.
std::vector<Tensor> snapshot(const Module& m) {
  std::vector<Tensor> out;
  for (const NamedTensor& t : all_tensors(m)) out.push_back(t.tensor.to(Device::CPU).clone());
  return out;
}

bool unchanged(const Module& m, const std::vector<Tensor>& before) {
  const std::vector<NamedTensor> now = all_tensors(m);
  if (now.size() != before.size()) return false;
  for (size_t i = 0; i < now.size(); ++i) {
    if (!test::same_bytes(now[i].tensor.to(Device::CPU), before[i])) return false;
  }
  return true;
}

// Random, non-zero BatchNorm running statistics (variance positive), so the test sees them.
void randomize_buffers(Module& m, std::mt19937_64& rng) {
  for (NamedTensor& b : m.buffers()) {
    const bool var = b.name.find("var") != std::string::npos;
    b.tensor.copy_(Tensor::uniform(b.tensor.shape(), rng, var ? 0.5 : -1.0, var ? 2.0 : 1.0));
  }
}

// The module's output on `x` in eval mode (running statistics used), as host values.
std::vector<double> eval_output(Module& m, const Tensor& x) {
  NoGradGuard no_grad;
  m.eval();
  std::vector<double> y = m.forward(x).to_vector();
  m.train();
  return y;
}

// A module with one f32/f16/f64 parameter, an optional second one and a buffer of chosen dtype.
class Probe : public Module {
 public:
  Probe(DType param_dtype, bool second, DType buffer_dtype, std::mt19937_64& rng) {
    register_parameter("weight", Tensor::uniform({4, 3}, rng, 0.5, 1.5, param_dtype));
    if (second) register_parameter("extra", Tensor::uniform({5}, rng, 0.5, 1.5, param_dtype));
    register_buffer("count", Tensor::from({3, 1, 4}, {3}, buffer_dtype));
  }
  Tensor forward(const Tensor& x) override { return x; }
  std::string name() const override { return "Probe"; }
};

TEST_CASE("checkpoint: crc32 matches the published check value and continues across calls") {
  const char* s = "123456789";
  CHECK(crc32(s, 9) == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value (zlib, PNG)
  CHECK(crc32(s, 0) == 0u);
  CHECK(crc32(s + 4, 5, crc32(s, 4)) == 0xCBF43926u);
  CHECK(crc32("123456780", 9) != 0xCBF43926u);
}

TEST_CASE("checkpoint: both seed models round-trip bit-identically into a model of another seed") {
  const fs::path dir = temp_dir("round_trip");
  for (ModelKind kind : {ModelKind::Normal, ModelKind::DepSep}) {
    INFO(model_kind_name(kind));
    std::mt19937_64 rng(11);
    auto src = make_seed_cnn(kind, 1);
    randomize_buffers(*src, rng);
    // Parameters live in an optimizer's flat buffer after one real Adam step, as in training.
    Adam src_opt(*src);
    const Tensor x = Tensor::uniform({4, 3, 32, 32}, rng, -1.0, 1.0);
    const Tensor labels = test::random_labels(4, 10, rng);
    src_opt.zero_grad();
    ops::cross_entropy(src->forward(x), labels).backward();
    src_opt.step();

    const std::string path = (dir / (std::string(model_kind_name(kind)) + ".ckpt")).string();
    const nlohmann::json meta = {{"model", model_kind_name(kind)}, {"epoch", 3}, {"test_acc", 0.5}};
    save_checkpoint(*src, path, meta);
    CHECK_FALSE(fs::exists(path + ".tmp"));

    auto dst = make_seed_cnn(kind, 2);
    Adam dst_opt(*dst);  // loading writes through the views into its flat buffer
    const std::vector<NamedTensor> a = all_tensors(*src), before = all_tensors(*dst);
    REQUIRE(a.size() == before.size());
    int differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      differ += !test::same_bytes(a[i].tensor, before[i].tensor);
    }
    CHECK(differ == int(a.size()));  // every tensor differs before loading, buffers included
    REQUIRE(eval_output(*src, x) != eval_output(*dst, x));

    const nlohmann::json got = load_checkpoint(*dst, path);
    CHECK(got == meta);
    const std::vector<NamedTensor> b = all_tensors(*dst);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].name);
      CHECK(a[i].name == b[i].name);
      CHECK(test::same_bytes(a[i].tensor, b[i].tensor));
    }
    CHECK(test::same_bytes(src_opt.parameters().values(), dst_opt.parameters().values()));
    CHECK(eval_output(*src, x) == eval_output(*dst, x));
    CHECK(read_checkpoint_meta(path) == meta);
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: the file is the documented layout") {
  const fs::path dir = temp_dir("layout");
  std::mt19937_64 rng(5);
  Probe p(DType::F32, true, DType::I32, rng);
  const std::string path = (dir / "p.ckpt").string();
  save_checkpoint(p, path, {{"note", "hello"}});
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() > 20);
  CHECK(bytes.compare(0, 8, std::string("DSCCKPT\0", 8)) == 0);
  uint32_t version = 0;
  uint64_t header_bytes = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&header_bytes, bytes.data() + 12, 8);
  CHECK(version == 2);
  const uint64_t data_start = 20 + header_bytes;
  CHECK(data_start % 64 == 0);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(20, header_bytes));
  CHECK(h["meta"]["note"] == "hello");
  REQUIRE(h["tensors"].size() == 3);
  CHECK(h["tensors"][0]["name"] == "weight");
  CHECK(h["tensors"][0]["kind"] == "parameter");
  CHECK(h["tensors"][0]["dtype"] == "f32");
  CHECK(h["tensors"][0]["shape"] == nlohmann::json::array({4, 3}));
  CHECK(h["tensors"][2]["name"] == "count");
  CHECK(h["tensors"][2]["kind"] == "buffer");
  CHECK(h["tensors"][2]["dtype"] == "i32");
  CHECK(bytes.size() == data_start + h["data_bytes"].get<uint64_t>());
  const std::vector<NamedTensor> params = p.parameters();
  for (size_t i = 0; i < 2; ++i) {
    const nlohmann::json& e = h["tensors"][i];
    const uint64_t off = e["offset"].get<uint64_t>();
    CHECK(off % 64 == 0);
    CHECK(std::memcmp(bytes.data() + data_start + off, params[i].tensor.raw(), 4 * (i ? 5 : 12)) ==
          0);
    const size_t nbytes = e["nbytes"].get<size_t>();
    CHECK(e["crc32"].get<uint32_t>() == crc32(bytes.data() + data_start + off, nbytes));
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: floating-point tensors are converted to the module's dtype on load") {
  const fs::path dir = temp_dir("dtype");
  std::mt19937_64 rng(7);
  Probe f64(DType::F64, false, DType::F32, rng);
  const std::string path = (dir / "f64.ckpt").string();
  save_checkpoint(f64, path, {});
  Probe f32(DType::F32, false, DType::F32, rng), f16(DType::F16, false, DType::F32, rng);
  load_checkpoint(f32, path);
  load_checkpoint(f16, path);
  const Tensor w64 = f64.parameters()[0].tensor;
  CHECK(test::same_bytes(f32.parameters()[0].tensor, w64.to(DType::F32)));
  CHECK(test::same_bytes(f16.parameters()[0].tensor, w64.to(DType::F16)));
  CHECK(f32.parameters()[0].tensor.to_vector() != w64.to_vector());  // really rounded to f32

  // An integer buffer cannot become a float one (nor the reverse): refused, module unchanged.
  Probe ints(DType::F32, false, DType::I32, rng);
  const std::string ipath = (dir / "i32.ckpt").string();
  save_checkpoint(ints, ipath, {});
  const std::vector<Tensor> before = snapshot(f32);
  CHECK_THROWS_WITH_AS(load_checkpoint(f32, ipath),
                       doctest::Contains("tensor 'count' is i32 in the file and cannot be "
                                         "converted to the model's f32"),
                       Error);
  CHECK(unchanged(f32, before));
  fs::remove_all(dir);
}

// A checkpoint of the normal model (seed 1) and a module (seed 2) to fail loading into.
struct ErrorFixture {
  explicit ErrorFixture(const std::string& name) : dir(temp_dir(name)) {
    save_checkpoint(*make_seed_cnn(ModelKind::Normal, 1), good, {{"model", "normal"}});
    bytes = read_bytes(good);
  }
  fs::path dir;
  std::string good = (dir / "good.ckpt").string();
  std::string bytes;
  std::shared_ptr<Sequential> model = make_seed_cnn(ModelKind::Normal, 2);
  std::vector<Tensor> before = snapshot(*model);
  ~ErrorFixture() { fs::remove_all(dir); }
  // Writes `content` to a file in the temporary directory and returns its path.
  std::string file(const std::string& name, const std::string& content) {
    write_bytes(dir / name, content);
    return (dir / name).string();
  }
  // Loading `path` must throw dsc::Error containing each of `parts` and change nothing.
  void expect(const std::string& path, const std::vector<std::string>& parts) {
    INFO(path);
    for (const std::string& part : parts) {
      CHECK_THROWS_WITH_AS(load_checkpoint(*model, path), contains(part), Error);
    }
    CHECK(unchanged(*model, before));
  }
  uint64_t header_bytes() const {
    uint64_t n = 0;
    std::memcpy(&n, bytes.data() + 12, 8);
    return n;
  }
  nlohmann::json header() const { return nlohmann::json::parse(bytes.substr(20, header_bytes())); }
};

TEST_CASE("checkpoint: unreadable, foreign, versioned and truncated files are named and refused") {
  ErrorFixture f("files");
  f.expect((f.dir / "absent.ckpt").string(),
           {"cannot read checkpoint '" + (f.dir / "absent.ckpt").string() + "'",
            "No such file or directory"});
  f.expect(f.dir.string(), {"cannot read checkpoint", "is a directory"});
  const std::string not_ours = f.file("notes.txt", "these are not the weights you are looking for");
  f.expect(not_ours, {"checkpoint '" + not_ours + "' is not a dsc checkpoint", "bad magic"});
  f.expect(f.file("empty.ckpt", ""), {"not a dsc checkpoint"});

  std::string v7 = f.bytes;
  v7[8] = 7;
  f.expect(f.file("v7.ckpt", v7), {"v7.ckpt' has format version 7", "reads versions 1 to 2"});
  std::string v0 = f.bytes;
  v0[8] = 0;
  f.expect(f.file("v0.ckpt", v0), {"v0.ckpt' has format version 0"});

  f.expect(f.file("short.ckpt", f.bytes.substr(0, 12)),
           {"short.ckpt' is truncated", "20-byte preamble"});
  f.expect(f.file("half_header.ckpt", f.bytes.substr(0, 20 + f.header_bytes() / 2)),
           {"half_header.ckpt' is truncated", "the header has"});
  f.expect(f.file("half_data.ckpt", f.bytes.substr(0, f.bytes.size() - 1000)),
           {"half_data.ckpt' is truncated", "bytes of tensor data after the header"});
}

TEST_CASE("checkpoint: malformed headers and corrupt data are named and refused") {
  ErrorFixture f("headers");
  std::string bad_json = f.bytes;
  bad_json[20] = '#';  // the header's opening brace
  f.expect(f.file("bad_json.ckpt", bad_json), {"bad_json.ckpt': the header is not valid JSON"});

  // Valid JSON that is not a valid header: a tensor entry without its dtype.
  auto with_header = [&](const nlohmann::json& h) {
    std::string text = h.dump(), out = f.bytes.substr(0, 20);
    const uint64_t n = text.size();
    std::memcpy(out.data() + 12, &n, 8);
    return out + text;
  };
  f.expect(f.file("no_dtype.ckpt",
                  with_header({{"tensors", {{{"name", "conv1.weight"}, {"shape", {1}}}}},
                               {"data_bytes", 0}})),
           {"malformed header", "tensor 'conv1.weight'", "dtype"});
  f.expect(f.file("no_list.ckpt", with_header({{"data_bytes", 0}})),
           {"no_list.ckpt': malformed header", "tensors"});
  nlohmann::json lying = f.header();
  lying["tensors"][0]["nbytes"] = 12;
  f.expect(f.file("lying.ckpt", with_header(lying)),
           {"malformed header",
            "tensor 'conv1.weight' is f32[128, 3, 3, 3] but says it has 12 "
            "bytes"});

  // Numbers that are not whole numbers >= 0 where offsets, sizes and checksums go. A huge one
  // parses as floating point, and the JSON library's conversion of it was undefined behaviour
  // (found by scripts/fuzz.sh checkpoint: tests/fuzz/regressions/checkpoint_huge_nbytes.ckpt).
  const std::string crash =
      read_bytes(fs::path(DSC_SOURCE_DIR) / "tests/fuzz/regressions/checkpoint_huge_nbytes.ckpt");
  REQUIRE(!crash.empty());
  f.expect(f.file("huge.ckpt", crash),
           {"huge.ckpt': malformed header", "tensor 'conv.weight' has 'nbytes' 1e+122",
            "expected a whole number >= 0"});
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"offset", -1}, {"nbytes", 0.5}, {"crc32", "1"}, {"crc32", 4294967296u}}) {
    nlohmann::json odd = f.header();
    odd["tensors"][0][key] = value;
    INFO(key << " = " << value.dump());
    f.expect(f.file("odd.ckpt", with_header(odd)),
             {"malformed header", "tensor 'conv1.weight' has", value.dump()});
  }
  nlohmann::json odd_shape = f.header();
  odd_shape["tensors"][0]["shape"] = {128, 3.5, 3, 3};
  f.expect(f.file("shape.ckpt", with_header(odd_shape)),
           {"tensor 'conv1.weight' has shape [128,3.5,3,3], expected a list of whole numbers"});
  nlohmann::json odd_size = f.header();
  odd_size["data_bytes"] = 1e300;
  f.expect(f.file("size.ckpt", with_header(odd_size)),
           {"malformed header: the header has 'data_bytes' 1e+300, expected a whole number >= 0"});

  // One flipped bit in fc.weight's data.
  const nlohmann::json h = f.header();
  uint64_t fc_offset = 0;
  for (const nlohmann::json& e : h["tensors"]) {
    if (e["name"] == "fc.weight") fc_offset = e["offset"].get<uint64_t>() + 100;
  }
  REQUIRE(fc_offset > 0);
  std::string flipped = f.bytes;
  flipped[20 + f.header_bytes() + fc_offset] ^= 0x10;
  f.expect(f.file("flipped.ckpt", flipped),
           {"flipped.ckpt': tensor 'fc.weight' is corrupt", "CRC-32"});
}

TEST_CASE("checkpoint: a checkpoint of another model is refused in words, module unchanged") {
  ErrorFixture f("other_model");
  // The normal model's checkpoint into the depsep model: the names differ.
  auto depsep = make_seed_cnn(ModelKind::DepSep, 2);
  const std::vector<Tensor> depsep_before = snapshot(*depsep);
  for (const char* part : {"good.ckpt' does not fit this model",
                           "tensor(s) of the model missing from the file (conv1.depthwise.weight",
                           "tensor(s) in the file that the model does not have (conv1.weight",
                           "the file holds a 'normal' model"}) {
    CHECK_THROWS_WITH_AS(load_checkpoint(*depsep, f.good), contains(part), Error);
  }
  CHECK(unchanged(*depsep, depsep_before));

  // Same names, other shapes: a normal model with 64 filters.
  SeedCnnOptions narrow;
  narrow.channels = 64;
  auto small = make_seed_cnn(ModelKind::Normal, 2, narrow);
  const std::vector<Tensor> small_before = snapshot(*small);
  CHECK_THROWS_WITH_AS(load_checkpoint(*small, f.good),
                       doctest::Contains("tensor 'conv1.weight' has the wrong shape: the model "
                                         "expects [64, 3, 3, 3], the file has [128, 3, 3, 3]"),
                       Error);
  CHECK(unchanged(*small, small_before));
  // Only the last parameters differ (5 classes): the tensors before them must not be copied.
  SeedCnnOptions five;
  five.classes = 5;
  auto head = make_seed_cnn(ModelKind::Normal, 2, five);
  const std::vector<Tensor> head_before = snapshot(*head);
  CHECK_THROWS_WITH_AS(load_checkpoint(*head, f.good),
                       doctest::Contains("tensor 'fc.weight' has the wrong shape: the model "
                                         "expects [5, 8192], the file has [10, 8192]"),
                       Error);
  CHECK(unchanged(*head, head_before));

  // Only extra tensors in the file; only missing ones.
  const fs::path two = f.dir / "two.ckpt", one = f.dir / "one.ckpt";
  std::mt19937_64 rng(3);
  Probe with_extra(DType::F32, true, DType::F32, rng), without(DType::F32, false, DType::F32, rng);
  save_checkpoint(with_extra, two.string(), {});
  save_checkpoint(without, one.string(), {});
  const std::vector<Tensor> without_before = snapshot(without), with_before = snapshot(with_extra);
  CHECK_THROWS_WITH_AS(load_checkpoint(without, two.string()),
                       doctest::Contains("1 tensor(s) in the file that the model does not have "
                                         "(extra)"),
                       Error);
  CHECK(unchanged(without, without_before));
  CHECK_THROWS_WITH_AS(load_checkpoint(with_extra, one.string()),
                       doctest::Contains("1 tensor(s) of the model missing from the file (extra)"),
                       Error);
  CHECK(unchanged(with_extra, with_before));
}

TEST_CASE("checkpoint: a failing save keeps the previous checkpoint and leaves no .tmp file") {
  const fs::path dir = temp_dir("atomic");
  const std::string path = (dir / "model.ckpt").string();
  auto first = make_seed_cnn(ModelKind::DepSep, 1), second = make_seed_cnn(ModelKind::DepSep, 2);
  save_checkpoint(*first, path, {{"epoch", 1}});
  const std::string good = read_bytes(path);

  // Disk full while writing: the temporary file is a link to /dev/full (writes fail ENOSPC).
  if (fs::exists("/dev/full")) {
    fs::create_symlink("/dev/full", path + ".tmp");
    CHECK_THROWS_WITH_AS(save_checkpoint(*second, path, {{"epoch", 2}}),
                         contains("cannot write checkpoint '" + path +
                                           "': No space left on device"),
                         Error);
    CHECK_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
    CHECK(read_bytes(path) == good);
    CHECK(load_checkpoint(*second, path)["epoch"] == 1);
    second = make_seed_cnn(ModelKind::DepSep, 2);
  } else {
    MESSAGE("/dev/full missing: disk-full case skipped");
  }

  // The destination is a directory: the rename fails after the data was written.
  const fs::path as_dir = dir / "taken";
  fs::create_directories(as_dir / "inside");
  CHECK_THROWS_WITH_AS(save_checkpoint(*second, as_dir.string(), {}),
                       contains("cannot write checkpoint '" + as_dir.string() + "'"),
                       Error);
  CHECK_FALSE(fs::exists(as_dir.string() + ".tmp"));
  CHECK(fs::is_directory(as_dir / "inside"));

  // A directory that does not exist.
  const std::string nowhere = (dir / "missing" / "model.ckpt").string();
  CHECK_THROWS_WITH_AS(save_checkpoint(*second, nowhere, {}),
                       contains("cannot write checkpoint '" + nowhere +
                                         "': No such file or directory"),
                       Error);
  CHECK(read_bytes(path) == good);

  // A successful save replaces the old checkpoint whole.
  save_checkpoint(*second, path, {{"epoch", 2}});
  CHECK(read_bytes(path) != good);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(load_checkpoint(*first, path)["epoch"] == 2);
  CHECK(test::same_bytes(first->parameters()[0].tensor, second->parameters()[0].tensor));

  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: the writability probe refuses bad paths and touches no checkpoint") {
  const fs::path dir = temp_dir("probe");
  const std::string path = (dir / "model.ckpt").string();
  check_checkpoint_writable(path);
  CHECK(fs::is_empty(dir));
  write_bytes(path, "an existing checkpoint");
  check_checkpoint_writable(path);
  CHECK(read_bytes(path) == "an existing checkpoint");
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const std::string nowhere = (dir / "missing" / "m.ckpt").string();
  CHECK_THROWS_WITH_AS(check_checkpoint_writable(nowhere),
                       contains("cannot write checkpoint '" + nowhere +
                                         "': No such file or directory"),
                       Error);
  CHECK_THROWS_WITH_AS(check_checkpoint_writable(dir.string()),
                       doctest::Contains("it is a directory"), Error);
  fs::remove_all(dir);
}


TEST_CASE("checkpoint: training state round-trips, a model load ignores it, mismatches are refused") {
  const fs::path dir = temp_dir("state");
  std::mt19937_64 rng(31);
  Probe src(DType::F32, true, DType::I32, rng);
  const Tensor m = Tensor::uniform({17}, rng, -1, 1), step = Tensor::from({12}, {1}),
               counts = Tensor::from({5, 9}, {2}, DType::I32);
  const std::string path = (dir / "s.ckpt").string();
  save_checkpoint(src, path, {{"epoch", 2}},
                  {{"optimizer.m", m}, {"optimizer.step", step}, {"tally.counts", counts}});
  // A model load takes the model alone.
  Probe dst(DType::F32, true, DType::I32, rng);
  CHECK(load_checkpoint(dst, path)["epoch"] == 2);
  CHECK(dst.parameters()[0].tensor.to_vector() == src.parameters()[0].tensor.to_vector());
  // The state, into tensors of the same names, shapes and dtypes.
  Tensor m2 = Tensor::zeros({17}), step2 = Tensor::zeros({1}),
         counts2 = Tensor::zeros({2}, DType::I32);
  CHECK(load_training_state(path, {{"optimizer.m", m2}, {"optimizer.step", step2},
                                   {"tally.counts", counts2}})["epoch"] == 2);
  CHECK(m2.to_vector() == m.to_vector());
  CHECK(step2.to_vector() == step.to_vector());
  CHECK(counts2.to_vector() == counts.to_vector());
  // Mismatches name what differs and change nothing.
  Tensor other = Tensor::full({17}, 3.0);
  CHECK_THROWS_WITH_AS(load_training_state(path, {{"optimizer.m", other}}),
                       contains("not expected optimizer.step, tally.counts"), Error);
  CHECK_THROWS_WITH_AS(
      load_training_state(path, {{"optimizer.m", other}, {"optimizer.v", Tensor::zeros({17})},
                                 {"optimizer.step", step2}, {"tally.counts", counts2}}),
      contains("missing optimizer.v"), Error);
  Tensor wrong = Tensor::zeros({16});
  CHECK_THROWS_WITH_AS(load_training_state(path, {{"optimizer.m", wrong},
                                                  {"optimizer.step", step2},
                                                  {"tally.counts", counts2}}),
                       contains("state tensor 'optimizer.m' is f32[17] in the file, this run has "
                                "f32[16]"),
                       Error);
  CHECK(other.to_vector() == std::vector<double>(17, 3.0));
  CHECK(wrong.to_vector() == std::vector<double>(16, 0.0));
  // State names may not reuse the model's.
  CHECK_THROWS_WITH_AS(save_checkpoint(src, path, {}, {{"weight", m}}),
                       contains("two tensors are named 'weight'"), Error);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: format 1 files load as model-only checkpoints") {
  const fs::path dir = temp_dir("v1");
  std::mt19937_64 rng(32);
  Probe src(DType::F32, true, DType::I32, rng);
  const std::string path = (dir / "old.ckpt").string();
  save_checkpoint(src, path, {{"model", "probe"}});
  std::string bytes = read_bytes(path);
  bytes[8] = 1;  // what format 1 wrote: the same layout without state tensors
  write_bytes(path, bytes);
  Probe dst(DType::F32, true, DType::I32, rng);
  CHECK(load_checkpoint(dst, path)["model"] == "probe");
  CHECK(dst.parameters()[1].tensor.to_vector() == src.parameters()[1].tensor.to_vector());
  Tensor t = Tensor::zeros({1});
  CHECK_THROWS_WITH_AS(load_training_state(path, {{"optimizer.step", t}}),
                       contains("holds no training state"), Error);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: keep K rotates older checkpoints, the newest always at the path") {
  const fs::path dir = temp_dir("keep");
  std::mt19937_64 rng(33);
  Probe p(DType::F32, false, DType::I32, rng);
  const std::string path = (dir / "r.ckpt").string();
  for (int i = 1; i <= 4; ++i) {
    save_checkpoint(p, path, {{"n", i}}, {}, SaveOptions{.keep = 3});
    CHECK(read_checkpoint_meta(path)["n"] == i);
  }
  CHECK(read_checkpoint_meta(path + ".1")["n"] == 3);
  CHECK(read_checkpoint_meta(path + ".2")["n"] == 2);
  CHECK_FALSE(fs::exists(path + ".3"));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  save_checkpoint(p, path, {{"n", 5}});  // keep 1: only the path is replaced
  CHECK(read_checkpoint_meta(path)["n"] == 5);
  CHECK(read_checkpoint_meta(path + ".1")["n"] == 3);
  CHECK_THROWS_WITH_AS(save_checkpoint(p, path, {}, {}, SaveOptions{.keep = 0}),
                       contains("keep 0 checkpoints"), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsc
