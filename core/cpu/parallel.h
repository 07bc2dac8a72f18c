// Work split over the CPU backend's OpenMP threads (see num_threads() in gemm.h).
#pragma once

#include <omp.h>

#include <cstddef>
#include <vector>

#include "core/cpu/gemm.h"

namespace dsc::cpu {

// The calling thread's scratch buffer of at least n elements, grown on demand and kept for the
// next call. Each (T, Tag, Slot) is a separate buffer: a kernel names its own Tag, so kernels that
// call one another (the depthwise kernels inside the fused DepSep ones) never share a buffer.
template <class T, class Tag, int Slot = 0>
T* thread_buffer(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
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
