// Reductions over one run of adjacent axes: the input seen as [outer, reduced, inner]. Sums and
// products accumulate in double, as the reference does, and are rounded once at the end; max and
// min are exact in float32, with the reference's NaN and signed-zero rules in any order.
//
// Along a contiguous reduced axis (inner = 1, as in a mean over features), one running value
// would make each step wait for the last: 1.2 GB/s here. So the axis is dealt round-robin to a
// fixed number of lanes (kLanes), which the compiler keeps in vector registers, and the lanes are
// combined in a fixed tree at the end: the same additions in the same order on every machine,
// whatever its vector width, so a result still does not depend on where it runs.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace kiln {

namespace {

constexpr int kLanes = 16;

// max and min as the reference's (numpy's NaN rule, JavaScript's Math.max and Math.min for
// zeros): NaN if either is NaN, and +0 over -0 for max (-0 for min). Both are then commutative
// and associative, so lanes give the sequential result bit for bit. Equal values are merged by
// their bits (and for max, or for min), which settles the zeros without a branch the vectorizer
// would refuse: a max over the rows of 4096 x 1024 took 2.5 ms with a signbit test, 1.8 like this.
inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float max_of(float acc, float x) {
  const float larger = x > acc ? x : acc;
  const float merged = x == acc ? from_bits(bits(x) & bits(acc)) : larger;
  return x != x ? x : merged;
}
inline float min_of(float acc, float x) {
  const float smaller = x < acc ? x : acc;
  const float merged = x == acc ? from_bits(bits(x) | bits(acc)) : smaller;
  return x != x ? x : merged;
}

template <typename T, typename Op>
T along_lanes(const float* x, int64_t n, T init, Op op) {
  T lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = init;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] = op(lane[j], T(x[i + j]));
  }
  const int tail = int(n - i);
  for (int j = 0; j < tail; ++j) lane[j] = op(lane[j], T(x[i + j]));
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) lane[j] = op(lane[j], lane[j + width]);
  }
  return lane[0];
}

// One value per outer index: the reduced axis is contiguous.
KILN_CLONES void reduce_rows(Reduce kind, const float* x, int64_t outer, int64_t reduced, float* out) {
  // Lambdas, not function pointers: each instance inlines its op, which the vectorizer needs.
  const auto add = [](double a, double b) { return a + b; };
  const auto mul = [](double a, double b) { return a * b; };
  const auto max = [](float a, float b) { return max_of(a, b); };
  const auto min = [](float a, float b) { return min_of(a, b); };
  for (int64_t o = 0; o < outer; ++o) {
    const float* row = x + o * reduced;
    switch (kind) {
      case Reduce::Sum: out[o] = float(along_lanes(row, reduced, 0.0, add)); break;
      case Reduce::Mean: out[o] = float(along_lanes(row, reduced, 0.0, add) / double(reduced)); break;
      case Reduce::Prod: out[o] = float(along_lanes(row, reduced, 1.0, mul)); break;
      case Reduce::Max: out[o] = along_lanes(row, reduced, -INFINITY, max); break;
      case Reduce::Min: out[o] = along_lanes(row, reduced, INFINITY, min); break;
    }
  }
}

// `inner` values per outer index, each accumulated down the reduced axis: the rows of the
// reduced axis are contiguous, so the vector runs along them.
KILN_CLONES void reduce_columns(Reduce kind, const float* x, int64_t outer, int64_t reduced, int64_t inner,
                                float* out) {
  std::vector<double> acc(static_cast<size_t>(inner));
  std::vector<float> best(static_cast<size_t>(inner));
  const bool exact = kind == Reduce::Max || kind == Reduce::Min;
  for (int64_t o = 0; o < outer; ++o) {
    const float* block = x + o * reduced * inner;
    float* dst = out + o * inner;
    if (exact) {
      std::fill(best.begin(), best.end(), kind == Reduce::Max ? -INFINITY : INFINITY);
      for (int64_t r = 0; r < reduced; ++r) {
        const float* row = block + r * inner;
        if (kind == Reduce::Max)
          for (int64_t i = 0; i < inner; ++i) best[i] = max_of(best[i], row[i]);
        else
          for (int64_t i = 0; i < inner; ++i) best[i] = min_of(best[i], row[i]);
      }
      std::copy(best.begin(), best.end(), dst);
      continue;
    }
    std::fill(acc.begin(), acc.end(), kind == Reduce::Prod ? 1.0 : 0.0);
    for (int64_t r = 0; r < reduced; ++r) {
      const float* row = block + r * inner;
      if (kind == Reduce::Prod)
        for (int64_t i = 0; i < inner; ++i) acc[i] *= row[i];
      else
        for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
    }
    for (int64_t i = 0; i < inner; ++i) dst[i] = float(kind == Reduce::Mean ? acc[i] / double(reduced) : acc[i]);
  }
}

}  // namespace

void reduce_f32(Reduce kind, const float* x, int64_t outer, int64_t reduced, int64_t inner, float* out) {
  if (inner == 1) reduce_rows(kind, x, outer, reduced, out);
  else reduce_columns(kind, x, outer, reduced, inner, out);
}

}  // namespace kiln
