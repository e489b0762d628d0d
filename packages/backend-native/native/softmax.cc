// Softmax and logSoftmax along one axis, the input seen as [outer, n, inner]: three passes over a
// lane (its max, its exponentials and their sum, the result) where the op's expansion into
// primitives makes five, and an exponential the compiler vectorizes where the primitives call the
// C library's, one value at a time, in double (elementwise.h, which must agree with generated
// loops to the bit). Here only the float64 reference's tolerance binds, so the exponential is a
// range reduction in double and a polynomial in float32, within a few ulp.
// Comparisons may be computed for every lane at once: without this, GCC keeps the clamp in the
// exponential (a comparison that could raise a floating-point exception) as a branch, and the
// loop around it one value at a time (2.7x slower on 4096 x 1000). The values computed are the same; only
// exception flags, which nothing here reads, could differ. This file only: the elementwise
// programs keep the compiler's defaults that their generated loops are compiled with.
#pragma GCC optimize("no-trapping-math")
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace kiln {

namespace {

// e^(x - m) for x <= m (or x = -inf); the lanes that could give anything else are filled with
// NaN first. The difference and the range reduction are in double: x - m in float32 would round
// by up to half an ulp of |x - m|, an error of |x - m| / 2 ulp in the result (40 ulp at -80).
inline float exp_below(float x, float m) {
  double z = double(x) - double(m);
  // Below -104, e^z is under half the smallest subnormal: 0 in float32, as the reference rounds it.
  z = z < -104.0 ? -104.0 : z;
  // z = k ln2 + r, |r| <= ln2 / 2; r is then exact enough for float32.
  const double k = (z * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;  // 1.5 * 2^52
  const float r = static_cast<float>(z - k * 0.6931471805599453);
  // Taylor to degree 7: the remainder is below 2e-8 of the result where |r| <= 0.35.
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^k in two factors, each a normal float32 (k >= -151), so results below 2^-126 come out
  // subnormal as they should rather than as zero.
  const int ki = static_cast<int>(k);
  const int half = ki / 2;
  const int32_t a_bits = (half + 127) << 23, b_bits = (ki - half + 127) << 23;
  float a, b;
  std::memcpy(&a, &a_bits, sizeof a);
  std::memcpy(&b, &b_bits, sizeof b);
  return p * a * b;
}

// The sum of n values in double, in eight interleaved parts (vectors, where one sum in order
// would add one value at a time).
inline double sum_of(const float* v, int64_t n) {
  double parts[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) parts[l] += v[j + l];
  double sum = 0;
  for (; j < n; ++j) sum += v[j];
  for (double part : parts) sum += part;
  return sum;
}

// One lane of n contiguous values.
KILN_CLONES
void lane(const float* x, int64_t n, bool log, float* out) {
  float m = -INFINITY;
  bool nan = false;
  for (int64_t j = 0; j < n; ++j) {
    m = x[j] > m ? x[j] : m;
    nan |= x[j] != x[j];
  }
  // A NaN, or a max of +-inf (inf - inf in every lane's subtraction), makes the reference NaN.
  if (nan || std::isinf(m)) {
    for (int64_t j = 0; j < n; ++j) out[j] = NAN;
    return;
  }
  // The exponentials go to `out` either way: a loop that also summed them could not be
  // vectorized (a sum in order), and logSoftmax overwrites them below.
  for (int64_t j = 0; j < n; ++j) out[j] = exp_below(x[j], m);
  const double sum = sum_of(out, n);
  if (log) {
    const double shift = double(m) + std::log(sum);
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(double(x[j]) - shift);
  } else {
    const float scale = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) out[j] *= scale;
  }
}

// The lanes of one [n, inner] block, inner > 1: each pass walks the block row by row, so the
// inner loop runs over `inner` contiguous lanes at once.
KILN_CLONES
void block(const float* x, int64_t n, int64_t inner, bool log, float* out, float* m, double* sum) {
  for (int64_t i = 0; i < inner; ++i) m[i] = -INFINITY, sum[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    // A NaN becomes the max and stays it (no comparison with it is true), for the check below.
    for (int64_t i = 0; i < inner; ++i) m[i] = row[i] > m[i] || row[i] != row[i] ? row[i] : m[i];
  }
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    float* dst = out + j * inner;
    for (int64_t i = 0; i < inner; ++i) {
      // A lane whose max is not finite comes out NaN below; its values are not exponentiated (a
      // NaN exponent would make an integer of NaN).
      const bool finite = std::isfinite(m[i]);
      const float e = exp_below(finite ? row[i] : 0.0f, finite ? m[i] : 0.0f);
      if (!log) dst[i] = e;
      sum[i] += e;
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    float* dst = out + j * inner;
    for (int64_t i = 0; i < inner; ++i) {
      const bool finite = std::isfinite(m[i]);  // NaN, or +-inf: the reference's lane is NaN
      const float value = log ? static_cast<float>(double(row[i]) - (double(m[i]) + std::log(sum[i])))
                              : dst[i] * static_cast<float>(1.0 / sum[i]);
      dst[i] = finite ? value : NAN;
    }
  }
}

}  // namespace

void softmax_f32(const float* x, int64_t outer, int64_t n, int64_t inner, bool log, float* out, int threads) {
  const int64_t lane_values = n * inner;
  // Blocks are independent: split between threads when there is enough work, with the same bits.
  const bool parallel = outer > 1 && outer * lane_values >= (int64_t(1) << 20);
  if (inner == 1) {
#pragma omp parallel for if (parallel) num_threads(threads > 0 ? threads : omp_get_max_threads()) schedule(static)
    for (int64_t o = 0; o < outer; ++o) lane(x + o * n, n, log, out + o * n);
    return;
  }
#pragma omp parallel if (parallel) num_threads(threads > 0 ? threads : omp_get_max_threads())
  {
    std::vector<float> m(inner);
    std::vector<double> sum(inner);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o)
      block(x + o * lane_values, n, inner, log, out + o * lane_values, m.data(), sum.data());
  }
}

}  // namespace kiln
