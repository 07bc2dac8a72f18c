// Internal helpers shared by the CIFAR-10 readers and writer (not part of the public API).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "data/dataset.h"

namespace dsc::data::detail {

// Runs `f`, turning a std::filesystem error (unreadable folder, permissions) into a DataError,
// whose message names the path as filesystem_error's does.
template <class F>
auto with_data_errors(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::filesystem::filesystem_error& e) {
    throw DataError(e.what());
  }
}

// "a, b/, c (and 12 more)" for the entries of `folder` (sub-folders end in '/'), sorted by name;
// "nothing (empty folder)" when it is empty, "nothing (cannot list it)" when it cannot be read.
inline std::string list_folder(const std::filesystem::path& folder, size_t max_names = 12) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (it->is_directory(ec)) name += '/';
    names.push_back(std::move(name));
  }
  if (ec) return "nothing (cannot list it: " + ec.message() + ")";
  if (names.empty()) return "nothing (empty folder)";
  std::sort(names.begin(), names.end());
  std::string out;
  for (size_t i = 0; i < names.size() && i < max_names; ++i) {
    out += (i ? ", " : "") + names[i];
  }
  if (names.size() > max_names)
    out += " (and " + std::to_string(names.size() - max_names) + " more)";
  return out;
}

inline bool is_directory(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

inline bool is_regular_file(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace dsc::data::detail
