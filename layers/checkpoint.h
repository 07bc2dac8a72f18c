// Checkpoints: a module's parameters and buffers (BatchNorm running statistics included) in one
// file, with free-form metadata (model name, epoch, accuracy, git commit, ...), and optionally
// the state of a training run (optimizer moments and step count, loss scaler, ...: "state"
// tensors, restored by load_training_state). Lives in layers/ because it is about Modules: core/
// knows tensors but not parameter names.
//
// File layout (all integers little-endian; the data of a tensor is its raw little-endian values):
//   bytes  0..7   magic "DSCCKPT\0"
//   bytes  8..11  format version (uint32, currently 2; version 1 files, which have no "state"
//                 tensors, are still read)
//   bytes 12..19  header length H in bytes (uint64)
//   bytes 20..    header: UTF-8 JSON {"tensors": [{"name", "kind" (parameter | buffer | state),
//                 "dtype" (f32 | f16 | f64 | i32 | u8), "shape", "offset", "nbytes", "crc32"},
//                 ...], "data_bytes", "meta"}
//   then          data_bytes bytes of tensor data; "offset" counts from the start of this section,
//                 each tensor starts on a 64-byte boundary of it.
// Tested in tests/core/test_checkpoint.cpp (round trips, every error, atomic writes, rotation,
// training state) and, through `train --save/--load/--resume`, in tests/train/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/module.h"

namespace dsc {

inline constexpr uint32_t kCheckpointVersion = 2;

struct SaveOptions {
  // Checkpoints kept: the new one at `path` and the keep - 1 before it as path.1 (the newest),
  // path.2, ... (keep >= 1).
  int keep = 1;
};

// Writes every parameter and buffer of `m` (from any device: copied to the host first), the
// `state` tensors (kind "state"; names must differ from the model's) and `meta` to `path`. The
// file is written to `path + ".tmp"` and flushed to disk; only then are older checkpoints rotated
// (path -> path.1 by a hard link, so `path` itself never goes missing) and the new file renamed
// over `path`. A failed save (missing directory, no permission, disk full, ...) never leaves a
// half-written checkpoint nor harms an existing one, and throws dsc::Error naming the path.
void save_checkpoint(const Module& m, const std::string& path, const nlohmann::json& meta,
                     const std::vector<NamedTensor>& state = {}, SaveOptions options = {});

// Loads the model of the checkpoint at `path` into `m` (any device, any floating-point parameter
// dtype: values are converted) and returns its meta; "state" tensors are ignored (a training
// checkpoint is also a model checkpoint). Everything is checked before anything is copied, so on
// error (unreadable file, not a checkpoint, unsupported version, truncated, malformed header, CRC
// mismatch, tensors missing or extra, shape or dtype mismatch) `m` is unchanged; the dsc::Error
// names the file and, where one is at fault, the tensor.
nlohmann::json load_checkpoint(Module& m, const std::string& path);

// Copies the checkpoint's "state" tensors into `state` (matched by name; every one must be in the
// file with the same shape and dtype, and the file may hold no others) and returns its meta. As
// load_checkpoint: everything is checked first, nothing changes on error. A checkpoint without
// state (format 1, or saved without it) is an error saying so.
nlohmann::json load_training_state(const std::string& path, const std::vector<NamedTensor>& state);

// The meta of the checkpoint at `path`, after checking its magic, version and header (not the
// tensor data): lets a caller refuse a checkpoint of the wrong model before building anything.
nlohmann::json read_checkpoint_meta(const std::string& path);

// Throws dsc::Error naming `path` unless a checkpoint could be written there: its directory
// exists and is writable (probed by creating and removing `path + ".tmp"`; `path` itself, which
// may be the checkpoint being loaded, is not touched) and `path` is not a directory.
void check_checkpoint_writable(const std::string& path);

// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of `n` bytes, continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace dsc
