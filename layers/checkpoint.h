// Checkpoints: a module's parameters and buffers (BatchNorm running statistics included) in one
// file, with free-form metadata (model name, epoch, accuracy, git commit, ...). Lives in layers/
// because it is about Modules: core/ knows tensors but not parameter names.
//
// File layout (all integers little-endian; the data of a tensor is its raw little-endian values):
//   bytes  0..7   magic "DSCCKPT\0"
//   bytes  8..11  format version (uint32, currently 1)
//   bytes 12..19  header length H in bytes (uint64)
//   bytes 20..    header: UTF-8 JSON {"tensors": [{"name", "kind" (parameter | buffer), "dtype"
//                 (f32 | f16 | f64 | i32 | u8), "shape", "offset", "nbytes", "crc32"}, ...],
//                 "data_bytes", "meta"}
//   then          data_bytes bytes of tensor data; "offset" counts from the start of this section,
//                 each tensor starts on a 64-byte boundary of it.
// Tested in tests/core/test_checkpoint.cpp (round trips, every error, atomic writes) and, through
// `train --save/--load`, in tests/apps/test_train_checkpoint.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "layers/module.h"

namespace dsc {

inline constexpr uint32_t kCheckpointVersion = 1;

// Writes every parameter and buffer of `m` (from any device: copied to the host first) and
// `meta` to `path`. The file is written to `path + ".tmp"`, flushed to disk and then renamed over
// `path`, so a failed save never leaves a half-written checkpoint nor harms an existing one.
// Throws dsc::Error naming the path (missing directory, no permission, disk full, ...).
void save_checkpoint(const Module& m, const std::string& path, const nlohmann::json& meta);

// Loads the checkpoint at `path` into `m` (any device, any floating-point parameter dtype: values
// are converted) and returns its meta. Everything is checked before anything is copied, so on
// error (unreadable file, not a checkpoint, unsupported version, truncated, malformed header, CRC
// mismatch, tensors missing or extra, shape or dtype mismatch) `m` is unchanged; the dsc::Error
// names the file and, where one is at fault, the tensor.
nlohmann::json load_checkpoint(Module& m, const std::string& path);

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
