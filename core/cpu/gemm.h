// Row-major GEMM on the host through OpenBLAS: C = alpha * op(A) * op(B) + beta * C, where op(A) is
// [m, k] and op(B) is [k, n]; lda/ldb/ldc are the row strides of A, B and C as stored.
#pragma once

namespace dsc::cpu {

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);
void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc);

// Threads used by the CPU backend (OpenMP regions and OpenBLAS). Default: all cores.
void set_num_threads(int n);
int num_threads();

}  // namespace dsc::cpu
