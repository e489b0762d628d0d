// Reductions over one run of adjacent axes: the input seen as [outer, reduced, inner]. Sums and
// products accumulate in double, as the reference does, and are rounded once at the end; the
// reduced axis is walked in order, so a result does not depend on the machine it runs on.
#include <cmath>
#include <vector>

#include "kernels.h"

namespace kiln {

namespace {

inline double step(Reduce kind, double acc, double x) {
  switch (kind) {
    case Reduce::Sum:
    case Reduce::Mean: return acc + x;
    case Reduce::Prod: return acc * x;
    case Reduce::Max: return std::isnan(acc) || std::isnan(x) ? NAN : (x > acc ? x : acc);
    case Reduce::Min: return std::isnan(acc) || std::isnan(x) ? NAN : (x < acc ? x : acc);
  }
  return acc;
}

inline double initial(Reduce kind) {
  switch (kind) {
    case Reduce::Prod: return 1.0;
    case Reduce::Max: return -INFINITY;
    case Reduce::Min: return INFINITY;
    default: return 0.0;
  }
}

}  // namespace

void reduce_f32(Reduce kind, const float* x, int64_t outer, int64_t reduced, int64_t inner, float* out) {
  const double init = initial(kind);
  std::vector<double> acc(size_t(inner > 0 ? inner : 1));
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(acc.begin(), acc.end(), init);
    const float* block = x + o * reduced * inner;
    // Row by row along the reduced axis: each row's elements are contiguous.
    for (int64_t r = 0; r < reduced; ++r) {
      const float* row = block + r * inner;
      if (kind == Reduce::Sum || kind == Reduce::Mean) {
        for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) acc[i] = step(kind, acc[i], row[i]);
      }
    }
    float* dst = out + o * inner;
    for (int64_t i = 0; i < inner; ++i)
      dst[i] = static_cast<float>(kind == Reduce::Mean ? acc[i] / double(reduced) : acc[i]);
  }
}

}  // namespace kiln
