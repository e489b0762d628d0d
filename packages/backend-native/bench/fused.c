/* The fused chain relu(x * a + b) over n float32 values as a C loop, compiled with the machine's
 * gcc for its own vector extensions: the peer of the native device's fused program. Runs on
 * `threads` OpenMP threads, each a contiguous share of the loop. Prints the median of `runs`
 * passes in ms. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static void chain(const float* restrict x, float a, float b, float* restrict y, long n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (long i = 0; i < n; i++) {
    float v = x[i] * a + b;
    y[i] = v > 0 ? v : 0;
  }
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  long n = atol(argv[1]);
  int runs = atoi(argv[2]);
  int threads = atoi(argv[3]);
  float* x = malloc(sizeof(float) * n);
  float* y = malloc(sizeof(float) * n);
  for (long i = 0; i < n; i++) x[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
  double* ms = malloc(sizeof(double) * runs);
  chain(x, 1.5f, 0.5f, y, n, threads);
  for (int r = 0; r < runs; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    chain(x, 1.5f, 0.5f, y, n, threads);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms[r] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  }
  qsort(ms, runs, sizeof(double), compare);
  printf("%f\n", ms[runs / 2]);
  return y[n / 2] < 0; /* keeps the loop's result live */
}
