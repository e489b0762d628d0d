/* OpenBLAS's sgemm called from C, timed the way the benchmark times kiln: the median of `runs`
 * calls of C = A x B on n x n float32 matrices, with `threads` OpenBLAS threads, after at least a
 * third as many and `warmup_ms` of unmeasured calls. Prints ms. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  int n = atoi(argv[1]), runs = atoi(argv[2]), threads = atoi(argv[3]);
  double warmup_ms = atof(argv[4]);
  openblas_set_num_threads(threads);
  float* a = malloc(sizeof(float) * n * n);
  float* b = malloc(sizeof(float) * n * n);
  float* c = malloc(sizeof(float) * n * n);
  for (int i = 0; i < n * n; i++) {
    a[i] = (float)((i * 7) % 13) / 13.0f;
    b[i] = (float)((i * 5) % 11) / 11.0f;
  }
  double* ms = malloc(sizeof(double) * runs);
  struct timespec w0, w1;
  clock_gettime(CLOCK_MONOTONIC, &w0);
  for (int r = 0;; r++) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double elapsed = (w1.tv_sec - w0.tv_sec) * 1e3 + (w1.tv_nsec - w0.tv_nsec) / 1e6;
    if (r + 1 >= (runs + 2) / 3 && elapsed >= warmup_ms) break;
  }
  for (int r = 0; r < runs; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms[r] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  }
  qsort(ms, runs, sizeof(double), compare);
  printf("%f\n", ms[runs / 2]);
  return c[0] < -1e30f;
}
