// Kernel choices: where a backend has several implementations of an op, which one runs. Chosen
// explicitly by the program (train / bench / train_steps flags, or set_kernel_options in code) and
// recorded in run headers; the CPU backend has one implementation of each and ignores them.
//
//   KernelOptions o = kernel_options();
//   o.depthwise = KernelOptions::Depthwise::Cudnn;
//   set_kernel_options(o);            // or: ScopedKernelOptions guard(o);
//
// Set them between steps, not while ops run on another thread. A change takes effect at the next
// op (the CUDA backend searches cuDNN algorithms again for the new settings).
#pragma once

#include <cstdint>
#include <string>

namespace dsc {

struct KernelOptions {
  // Depthwise convolutions (groups == channels): own shared-memory tiled kernels, own naive
  // kernels, or cuDNN's grouped convolution.
  enum class Depthwise { Own, Naive, Cudnn };
  // 1x1 convolutions (stride 1, no padding): strided-batched cuBLAS GEMMs, or cuDNN. f64 always
  // uses cuBLAS (cuDNN's convolutions have no f64 path here).
  enum class Pointwise { Cublas, Cudnn };
  // The fused depthwise-separable op: one fused kernel per direction where the backend has one,
  // or composed of depthwise conv + pointwise conv + ReLU.
  enum class DepSep { Fused, Composed };
  // cuDNN's algorithm per convolution shape: benchmarked on first use, or its heuristics' pick.
  enum class ConvSearch { Benchmark, Heuristic };

  Depthwise depthwise = Depthwise::Own;
  Pointwise pointwise = Pointwise::Cublas;
  DepSep depsep = DepSep::Fused;
  ConvSearch conv_search = ConvSearch::Benchmark;
  // Only deterministic library algorithms (cuDNN's without atomics): identical inputs give
  // identical bits, run after run and step after step. Our own kernels are always deterministic.
  bool deterministic = true;
  int64_t conv_workspace_mb = 512;    // cuDNN workspace limit while searching (also <= free / 2)
  int64_t pointwise_scratch_mb = 64;  // 1x1 weight gradient's per-image partials, per chunk
};
bool operator==(const KernelOptions& a, const KernelOptions& b);
inline bool operator!=(const KernelOptions& a, const KernelOptions& b) { return !(a == b); }

const KernelOptions& kernel_options();
void set_kernel_options(const KernelOptions& options);  // throws on out-of-range sizes
// Bumped by every set_kernel_options: a backend that caches choices made under the options
// compares it to decide whether they still hold.
uint64_t kernel_options_generation();

// "depthwise=own pointwise=cublas depsep=fused conv-search=benchmark deterministic=on"
std::string describe(const KernelOptions& options);

// Names as the flags spell them (own|naive|cudnn, cublas|cudnn, fused|composed,
// benchmark|heuristic); parsing throws dsc::Error naming `what` (e.g. "--depthwise") and the
// accepted names.
const char* name(KernelOptions::Depthwise v);
const char* name(KernelOptions::Pointwise v);
const char* name(KernelOptions::DepSep v);
const char* name(KernelOptions::ConvSearch v);
KernelOptions::Depthwise parse_depthwise(const std::string& s, const char* what);
KernelOptions::Pointwise parse_pointwise(const std::string& s, const char* what);
KernelOptions::DepSep parse_depsep(const std::string& s, const char* what);
KernelOptions::ConvSearch parse_conv_search(const std::string& s, const char* what);

// Sets options for its lifetime and restores the previous ones (tests, benchmarks).
class ScopedKernelOptions {
 public:
  explicit ScopedKernelOptions(const KernelOptions& options) : saved_(kernel_options()) {
    set_kernel_options(options);
  }
  ~ScopedKernelOptions() { set_kernel_options(saved_); }
  ScopedKernelOptions(const ScopedKernelOptions&) = delete;
  ScopedKernelOptions& operator=(const ScopedKernelOptions&) = delete;

 private:
  KernelOptions saved_;
};

}  // namespace dsc
