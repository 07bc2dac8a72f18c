// Saving and loading checkpoints (format in checkpoint.h): a header of tensor entries with a
// CRC-32 each, then the raw data. Loading validates the whole file and stages every tensor on the
// host, converted to the module's dtype, before copying anything into the module. Tested in
// tests/core/test_checkpoint.cpp.
#include "layers/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace dsc {

static_assert(std::endian::native == std::endian::little,
              "checkpoints store raw little-endian data; a big-endian host would need byte swaps");

namespace {

constexpr char kMagic[8] = {'D', 'S', 'C', 'C', 'K', 'P', 'T', '\0'};
constexpr uint64_t kPrefixBytes = 20;  // magic, version, header length
constexpr uint64_t kAlign = 64;        // every tensor's data starts on a 64-byte file offset

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::optional<DType> parse_dtype(const std::string& s) {
  for (DType t : {DType::F32, DType::F16, DType::F64, DType::I32, DType::U8}) {
    if (s == dtype_name(t)) return t;
  }
  return std::nullopt;
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::F64; }

// ---- reading ------------------------------------------------------------------------------------

struct Entry {
  std::string name, kind;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t offset = 0, nbytes = 0;
  uint32_t crc = 0;
};

struct Header {
  std::vector<Entry> tensors;
  uint64_t data_start = 0, data_bytes = 0;
  nlohmann::json meta;
};

std::string where(const std::string& path) { return "checkpoint '" + path + "'"; }

std::ifstream open_for_reading(const std::string& path) {
  std::error_code ec;
  DSC_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", where(path),
            ": it is a directory (expected a file written by save_checkpoint or train --save)");
  std::ifstream in(path, std::ios::binary);
  DSC_CHECK(in.good(), "cannot read ", where(path), ": ", std::strerror(errno));
  return in;
}

uint64_t file_size(std::ifstream& in) {
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  return size;
}

// A header number that must be a whole number >= 0 (an offset, a size, a checksum). The JSON
// library would convert a fraction, a negative or a huge number (parsed as floating point) too,
// and converting one out of range is undefined, so only a JSON unsigned integer is accepted.
uint64_t whole_number(const nlohmann::json& j, const char* key, const std::string& what) {
  const nlohmann::json& v = j.at(key);
  DSC_CHECK(v.is_number_unsigned(), what, " has '", key, "' ", v.dump(),
            ", expected a whole number >= 0");
  return v.get<uint64_t>();
}

// Parses and checks one tensor entry of the header; `i` is its position, for messages.
Entry parse_entry(const nlohmann::json& j, size_t i, uint64_t data_bytes, const std::string& path) {
  Entry e;
  std::string what = "tensor #" + std::to_string(i);
  try {
    e.name = j.at("name").get<std::string>();
    what = "tensor '" + e.name + "'";
    e.kind = j.value("kind", "parameter");
    DSC_CHECK(e.kind == "parameter" || e.kind == "buffer" || e.kind == "state", where(path),
              ": malformed header: ", what, " has unknown kind '", e.kind, "'");
    const std::string dtype = j.at("dtype").get<std::string>();
    const std::optional<DType> t = parse_dtype(dtype);
    DSC_CHECK(t.has_value(), where(path), ": malformed header: ", what, " has unknown dtype '",
              dtype, "'");
    e.dtype = *t;
    const std::string context = where(path) + ": malformed header: " + what;
    const nlohmann::json& shape = j.at("shape");
    DSC_CHECK(shape.is_array() && std::all_of(shape.begin(), shape.end(),
                                              [](const auto& d) { return d.is_number_integer(); }),
              context, " has shape ", shape.dump(), ", expected a list of whole numbers");
    e.shape = shape.get<Shape>();
    e.offset = whole_number(j, "offset", context);
    e.nbytes = whole_number(j, "nbytes", context);
    const uint64_t crc = whole_number(j, "crc32", context);
    DSC_CHECK(crc <= 0xffffffffu, context, " has crc32 ", crc, ", expected a 32-bit value");
    e.crc = static_cast<uint32_t>(crc);
  } catch (const nlohmann::json::exception& ex) {
    throw Error(where(path) + ": malformed header: " + what + ": " + ex.what());
  }
  for (int64_t d : e.shape) {
    DSC_CHECK(d >= 0, where(path), ": malformed header: ", what, " has shape ",
              shape_str(e.shape));
  }
  DSC_CHECK(e.nbytes == uint64_t(shape_numel(e.shape)) * dtype_size(e.dtype), where(path),
            ": malformed header: ", what, " is ", dtype_name(e.dtype), shape_str(e.shape),
            " but says it has ", e.nbytes, " bytes");
  DSC_CHECK(e.offset <= data_bytes && e.nbytes <= data_bytes - e.offset, where(path),
            ": malformed header: ", what, " lies outside the data section (offset ", e.offset,
            ", ", e.nbytes, " bytes, the section has ", data_bytes, ")");
  return e;
}

Header read_header(std::ifstream& in, const std::string& path) {
  const uint64_t size = file_size(in);
  char prefix[kPrefixBytes] = {};
  in.read(prefix, std::streamsize(std::min<uint64_t>(size, kPrefixBytes)));
  DSC_CHECK(size >= sizeof kMagic && std::memcmp(prefix, kMagic, sizeof kMagic) == 0,
            where(path), " is not a dsc checkpoint (bad magic bytes; expected a file written by "
            "save_checkpoint or train --save)");
  DSC_CHECK(size >= kPrefixBytes, where(path), " is truncated: ", size,
            " bytes, shorter than the 20-byte preamble");
  uint32_t version = 0;
  uint64_t header_bytes = 0;
  std::memcpy(&version, prefix + 8, 4);
  std::memcpy(&header_bytes, prefix + 12, 8);
  DSC_CHECK(version >= 1 && version <= kCheckpointVersion, where(path), " has format version ",
            version, "; this build reads versions 1 to ", kCheckpointVersion);
  DSC_CHECK(header_bytes <= size - kPrefixBytes, where(path), " is truncated: the header has ",
            header_bytes, " bytes but only ", size - kPrefixBytes, " follow the preamble");
  std::string text(header_bytes, '\0');
  in.read(text.data(), std::streamsize(header_bytes));
  DSC_CHECK(in.good(), "cannot read ", where(path), ": ", std::strerror(errno));

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& ex) {
    throw Error(where(path) + ": the header is not valid JSON (" + ex.what() + ")");
  }
  Header h;
  h.data_start = kPrefixBytes + header_bytes;
  try {
    DSC_CHECK(j.is_object(), where(path), ": malformed header: expected a JSON object");
    h.data_bytes = whole_number(j, "data_bytes", where(path) + ": malformed header: the header");
    const nlohmann::json& tensors = j.at("tensors");
    DSC_CHECK(tensors.is_array(), where(path), ": malformed header: 'tensors' is not a list");
    for (size_t i = 0; i < tensors.size(); ++i) {
      h.tensors.push_back(parse_entry(tensors[i], i, h.data_bytes, path));
    }
    h.meta = j.value("meta", nlohmann::json::object());
  } catch (const nlohmann::json::exception& ex) {
    throw Error(where(path) + ": malformed header: " + ex.what());
  }
  std::map<std::string, int> seen;
  for (const Entry& e : h.tensors) {
    DSC_CHECK(++seen[e.name] == 1, where(path), ": malformed header: tensor '", e.name,
              "' appears twice");
  }
  DSC_CHECK(h.data_bytes <= size - h.data_start, where(path), " is truncated: expected ",
            h.data_bytes, " bytes of tensor data after the header, the file has ",
            size - h.data_start);
  return h;
}

// "a, b, c and 4 more" of at most `limit` names.
std::string name_list(const std::vector<std::string>& names, size_t limit = 4) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > limit) s += " and " + std::to_string(names.size() - limit) + " more";
  return s;
}

// ---- writing ------------------------------------------------------------------------------------

// A file written with stdio so that every failure (ENOSPC included) surfaces with its errno.
class TmpFile {
 public:
  TmpFile(std::string tmp, std::string path) : tmp_(std::move(tmp)), path_(std::move(path)) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail();
  }
  ~TmpFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  void write(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, f_) != n) fail();
  }
  // Flushes to disk and closes; then keeps `keep` - 1 older checkpoints (path.1 newest) and
  // renames the new file over the destination. `path` exists throughout: the newest old one moves
  // to path.1 by a hard link, and the rename replaces `path` atomically.
  void commit(int keep) {
    if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) fail();
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) fail();
    if (keep > 1 && std::filesystem::exists(path_)) {
      for (int i = keep - 1; i >= 2; --i) {
        const std::string from = path_ + "." + std::to_string(i - 1);
        const std::string to = path_ + "." + std::to_string(i);
        if (std::filesystem::exists(from) && std::rename(from.c_str(), to.c_str()) != 0) fail();
      }
      const std::string first = path_ + ".1";
      if (std::remove(first.c_str()) != 0 && errno != ENOENT) fail();
      if (::link(path_.c_str(), first.c_str()) != 0) fail();
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail();
    committed_ = true;
  }

 private:
  [[noreturn]] void fail() {
    throw Error("cannot write checkpoint '" + path_ + "': " + std::strerror(errno) +
                " (writing '" + tmp_ + "'; the directory must exist and be writable)");
  }
  std::string tmp_, path_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

void save_checkpoint(const Module& m, const std::string& path, const nlohmann::json& meta,
                     const std::vector<NamedTensor>& state, SaveOptions options) {
  DSC_CHECK(options.keep >= 1, "save_checkpoint '", path, "': keep ", options.keep,
            " checkpoints (expected at least 1)");
  // Everything that can fail on the model's side happens before the file is opened.
  struct Item {
    std::string name;
    const char* kind;
    Tensor host;
    uint64_t offset;
  };
  std::vector<Item> items;
  std::map<std::string, int> seen;
  uint64_t data_bytes = 0;
  const std::pair<const char*, std::vector<NamedTensor>> groups[] = {
      {"parameter", m.parameters()}, {"buffer", m.buffers()}, {"state", state}};
  for (const auto& [kind, tensors] : groups) {
    for (const NamedTensor& p : tensors) {
      DSC_CHECK(p.tensor.defined(), "save_checkpoint '", path, "': tensor '", p.name,
                "' is undefined");
      DSC_CHECK(++seen[p.name] == 1, "save_checkpoint '", path, "': two tensors are named '",
                p.name, "'");
      Tensor host = p.tensor.device() == Device::CPU ? p.tensor : p.tensor.to(Device::CPU);
      host = host.contiguous();
      data_bytes = align_up(data_bytes);
      items.push_back({p.name, kind, host, data_bytes});
      data_bytes += host.nbytes();
    }
  }
  nlohmann::json tensors = nlohmann::json::array();
  for (const Item& it : items) {
    tensors.push_back({{"name", it.name},
                       {"kind", it.kind},
                       {"dtype", dtype_name(it.host.dtype())},
                       {"shape", it.host.shape()},
                       {"offset", it.offset},
                       {"nbytes", it.host.nbytes()},
                       {"crc32", crc32(it.host.raw(), it.host.nbytes())}});
  }
  std::string header =
      nlohmann::json{{"tensors", tensors}, {"data_bytes", data_bytes}, {"meta", meta}}.dump();
  // Pad with spaces (still valid JSON) so that the data section starts on an aligned offset.
  header.resize(align_up(kPrefixBytes + header.size()) - kPrefixBytes, ' ');

  char prefix[kPrefixBytes];
  const uint32_t version = kCheckpointVersion;
  const uint64_t header_bytes = header.size();
  std::memcpy(prefix, kMagic, 8);
  std::memcpy(prefix + 8, &version, 4);
  std::memcpy(prefix + 12, &header_bytes, 8);

  TmpFile f(path + ".tmp", path);
  f.write(prefix, sizeof prefix);
  f.write(header.data(), header.size());
  static const char zeros[kAlign] = {};
  uint64_t written = 0;
  for (const Item& it : items) {
    f.write(zeros, it.offset - written);
    f.write(it.host.raw(), it.host.nbytes());
    written = it.offset + it.host.nbytes();
  }
  f.commit(options.keep);
}

nlohmann::json read_checkpoint_meta(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  return read_header(in, path).meta;
}

namespace {
// The whole file checked: header, then every tensor's CRC. Returns the header and the data.
std::pair<Header, std::vector<char>> read_checked(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  Header h = read_header(in, path);
  std::vector<char> data(h.data_bytes);
  in.read(data.data(), std::streamsize(h.data_bytes));
  DSC_CHECK(in.good() || h.data_bytes == 0, "cannot read ", where(path), ": ",
            std::strerror(errno));
  for (const Entry& e : h.tensors) {
    const uint32_t crc = crc32(data.data() + e.offset, e.nbytes);
    DSC_CHECK(crc == e.crc, where(path), ": tensor '", e.name, "' is corrupt (its data has CRC-32 ",
              hex32(crc), ", the header says ", hex32(e.crc), ")");
  }
  return {std::move(h), std::move(data)};
}
}  // namespace

nlohmann::json load_checkpoint(Module& m, const std::string& path) {
  auto [full, data] = read_checked(path);
  Header h = std::move(full);
  std::erase_if(h.tensors, [](const Entry& e) { return e.kind == "state"; });

  // Names: the module's tensors and the file's must be the same set.
  std::vector<NamedTensor> targets = m.parameters();
  for (const NamedTensor& b : m.buffers()) targets.push_back(b);
  std::map<std::string, const Entry*> by_name;
  for (const Entry& e : h.tensors) by_name[e.name] = &e;
  std::vector<std::string> missing, extra;
  std::map<std::string, int> in_module;
  for (const NamedTensor& t : targets) {
    ++in_module[t.name];
    if (!by_name.count(t.name)) missing.push_back(t.name);
  }
  for (const Entry& e : h.tensors) {
    if (!in_module.count(e.name)) extra.push_back(e.name);
  }
  if (!missing.empty() || !extra.empty()) {
    std::ostringstream os;
    os << where(path) << " does not fit this model:";
    if (!missing.empty()) {
      os << " " << missing.size() << " tensor(s) of the model missing from the file ("
         << name_list(missing) << ")" << (extra.empty() ? "" : ";");
    }
    if (!extra.empty()) {
      os << " " << extra.size() << " tensor(s) in the file that the model does not have ("
         << name_list(extra) << ")";
    }
    if (h.meta.is_object() && h.meta.contains("model") && h.meta["model"].is_string()) {
      os << "; the file holds a '" << h.meta["model"].get<std::string>() << "' model";
    }
    throw Error(os.str());
  }

  // Shapes and dtypes, then stage every tensor on the host in the module's dtype.
  std::vector<Tensor> staged;
  for (const NamedTensor& t : targets) {
    const Entry& e = *by_name.at(t.name);
    DSC_CHECK(e.shape == t.tensor.shape(), where(path), ": tensor '", t.name,
              "' has the wrong shape: the model expects ", shape_str(t.tensor.shape()),
              ", the file has ", shape_str(e.shape));
    DSC_CHECK(e.dtype == t.tensor.dtype() || (is_float(e.dtype) && is_float(t.tensor.dtype())),
              where(path), ": tensor '", t.name, "' is ", dtype_name(e.dtype),
              " in the file and cannot be converted to the model's ",
              dtype_name(t.tensor.dtype()));
    Tensor host = Tensor::empty(e.shape, e.dtype, Device::CPU);
    if (e.nbytes) std::memcpy(host.raw(), data.data() + e.offset, e.nbytes);
    if (e.dtype != t.tensor.dtype()) host = host.to(t.tensor.dtype());
    staged.push_back(host);
  }
  for (size_t i = 0; i < targets.size(); ++i) targets[i].tensor.copy_(staged[i]);
  return h.meta;
}

nlohmann::json load_training_state(const std::string& path, const std::vector<NamedTensor>& state) {
  const auto [h, data] = read_checked(path);
  std::map<std::string, const Entry*> by_name;
  for (const Entry& e : h.tensors)
    if (e.kind == "state") by_name[e.name] = &e;
  DSC_CHECK(!by_name.empty(), where(path),
            " holds no training state (a model-only checkpoint, as --save wrote before format 2: "
            "load it with --load instead of --resume)");
  std::vector<std::string> missing, extra;
  std::map<std::string, int> wanted;
  for (const NamedTensor& t : state) {
    ++wanted[t.name];
    if (!by_name.count(t.name)) missing.push_back(t.name);
  }
  for (const auto& [name, e] : by_name)
    if (!wanted.count(name)) extra.push_back(name);
  DSC_CHECK(missing.empty() && extra.empty(), where(path),
            " holds another kind of training state: ",
            missing.empty() ? "" : "missing " + name_list(missing),
            missing.empty() || extra.empty() ? "" : "; ",
            extra.empty() ? "" : "not expected " + name_list(extra));
  std::vector<Tensor> staged;
  for (const NamedTensor& t : state) {
    const Entry& e = *by_name.at(t.name);
    DSC_CHECK(e.shape == t.tensor.shape() && e.dtype == t.tensor.dtype(), where(path),
              ": state tensor '", t.name, "' is ", dtype_name(e.dtype), shape_str(e.shape),
              " in the file, this run has ", dtype_name(t.tensor.dtype()),
              shape_str(t.tensor.shape()));
    Tensor host = Tensor::empty(e.shape, e.dtype, Device::CPU);
    if (e.nbytes) std::memcpy(host.raw(), data.data() + e.offset, e.nbytes);
    staged.push_back(host);
  }
  for (size_t i = 0; i < state.size(); ++i) {
    Tensor target = state[i].tensor;
    target.copy_(staged[i]);
  }
  return h.meta;
}

void check_checkpoint_writable(const std::string& path) {
  std::error_code ec;
  DSC_CHECK(!std::filesystem::is_directory(path, ec), "cannot write checkpoint '", path,
            "': it is a directory (expected a file path)");
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  DSC_CHECK(f != nullptr, "cannot write checkpoint '", path, "': ", std::strerror(errno),
            " (the directory must exist and be writable)");
  std::fclose(f);
  std::remove(tmp.c_str());
}

}  // namespace dsc
