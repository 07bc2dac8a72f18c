/* The gradient allreduce of data-parallel training alone (train/distributed_mpi.cpp does the same
 * MPI_Allreduce, then divides by the ranks): the median time of an in-place f32 sum over the
 * ranks of the seed's models' gradient buffers (528,522 and 135,717 floats), warm-up excluded.
 * This bounds what overlapping it with the backward (buckets) could save per step.
 *   mpicc -O2 bench/mpi_allreduce.c -o /tmp/mpi_allreduce
 *   mpirun --allow-run-as-root --oversubscribe -np 2 /tmp/mpi_allreduce
 * Not built by CMake (a measurement for bench/results/mpi/README.md, not part of dsc). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int counts[2] = {528522, 135717};
  const char* names[2] = {"normal", "depsep"};
  enum { kWarmup = 5, kRepeats = 41 };
  for (int m = 0; m < 2; ++m) {
    float* g = malloc(sizeof(float) * counts[m]);
    for (int i = 0; i < counts[m]; ++i) g[i] = 1e-3f * (float)((i * 7919 + rank) % 1000 - 500);
    double t[kRepeats];
    for (int r = 0; r < kWarmup + kRepeats; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, g, counts[m], MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      for (int i = 0; i < counts[m]; ++i) g[i] /= (float)size;
      if (r >= kWarmup) t[r - kWarmup] = MPI_Wtime() - t0;
    }
    qsort(t, kRepeats, sizeof t[0], cmp);
    if (rank == 0)
      printf("%s: %d floats (%.2f MB), %d ranks: median %.3f ms, min %.3f ms, max %.3f ms\n",
             names[m], counts[m], counts[m] * 4e-6, size, 1e3 * t[kRepeats / 2], 1e3 * t[0],
             1e3 * t[kRepeats - 1]);
    free(g);
  }
  MPI_Finalize();
  return 0;
}
