// Work split over the CPU backend's OpenMP threads (see num_threads() in gemm.h).
#pragma once

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/cpu/gemm.h"

namespace dsc::cpu {

// The calling thread's scratch buffer of at least n elements, 64-byte aligned, grown on demand
// and kept for the next call (its contents are not: a call that grows it may move them). Each
// (T, Tag, Slot) is a separate buffer: a kernel names its own Tag, so kernels that call one
// another (the depthwise kernels inside the fused DepSep ones) never share a buffer. The
// alignment matters for the vector kernels that read these buffers: a depthwise stencil reading
// a plane 16 bytes off a 32-byte boundary ran 10% slower on the AVX2 machine measured.
template <class T, class Tag, int Slot = 0>
T* thread_buffer(size_t n) {
  constexpr size_t kSlack = (64 + sizeof(T) - 1) / sizeof(T);
  thread_local std::vector<T> buf;
  if (buf.size() < n + kSlack) buf.resize(n + kSlack);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>((p + 63) & ~uintptr_t(63));
}

// Runs body(n, thread) for every image: in parallel over images (single-threaded GEMMs inside)
// when there are at least as many images as threads, else serially (then each GEMM is split over
// the threads by gemm()). `thread` is in [0, num_threads()), for per-thread partial sums.
template <class F>
void for_each_image(int n_images, F&& body) {
  const int threads = num_threads();
  if (n_images >= threads && threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < n_images; ++n) body(n, omp_get_thread_num());
  } else {
    for (int n = 0; n < n_images; ++n) body(n, 0);
  }
}

}  // namespace dsc::cpu
