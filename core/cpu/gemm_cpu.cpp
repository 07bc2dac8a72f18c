// OpenBLAS-backed GEMM and the CPU backend's thread count (see gemm.h).
//
// Threading: OpenBLAS (Debian's pthreads build) is kept single-threaded and all parallelism comes
// from OpenMP. A GEMM called outside a parallel region is split into num_threads() column (or row)
// panels, one single-threaded OpenBLAS call per thread; a GEMM called from inside an OpenMP region
// runs on the calling thread. This keeps one thread pool only: OpenBLAS's pthreads spin after each
// call and would otherwise steal cores from the OpenMP regions around them. OpenBLAS 0.3.x is safe
// to call concurrently when its own thread count is 1. Tested through tests/kernels/.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <thread>

#include "core/cpu/gemm.h"

namespace dsc::cpu {
namespace {
int g_threads = 0;
CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

inline void blas(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void gemm_impl(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
               int ldb, T beta, T* c, int ldc) {
  const int threads = num_threads();
  const double work = double(m) * n * k;
  if (threads == 1 || omp_in_parallel() || work < 1e6) {
    blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Split the larger output dimension into one panel per thread (multiples of 16 columns/rows).
  const bool split_n = n >= m;
  const int dim = split_n ? n : m;
  const int parts = std::min(threads, std::max(1, dim / 16));
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int p = 0; p < parts; ++p) {
    const int step = (dim / parts + 15) / 16 * 16;
    const int lo = std::min(dim, p * step), hi = (p == parts - 1) ? dim : std::min(dim, lo + step);
    if (hi <= lo) continue;
    if (split_n) {
      const T* bp = tb ? b + int64_t(lo) * ldb : b + lo;
      blas(ta, tb, m, hi - lo, k, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
    } else {
      const T* ap = ta ? a + lo : a + int64_t(lo) * lda;
      blas(ta, tb, hi - lo, n, k, alpha, ap, lda, b, ldb, beta, c + int64_t(lo) * ldc, ldc);
    }
  }
}
}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  gemm_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  gemm_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void set_num_threads(int n) {
  if (n < 1) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(1);
}

int num_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

}  // namespace dsc::cpu
