// Pooling over NHWC windows, with kiln's exact semantics: the windows are clipped to the input
// (padding never contributes, and an average divides by the pixels it covered), a NaN is maximal,
// ties go to the first maximum in row-major window order, and sums are kept in double. The window
// bounds of every output row and column come worked out (src/pool.ts); the channels are innermost
// and contiguous, so each pixel's inner loop runs over C values in a row.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"

namespace kiln {

void pool_f32(Pool kind, const PoolWindows& p, const float* x, const float* dy, float* out) {
  const int64_t c = p.c;
  std::vector<double> acc(static_cast<size_t>(c));
  std::vector<int64_t> at(static_cast<size_t>(c));
  const bool grad = kind == Pool::MaxGrad || kind == Pool::AvgGrad;
  std::vector<double> dx(grad ? size_t(p.n * p.h * p.w * c) : 0, 0.0);
  int64_t y_base = 0;
  for (int64_t b = 0; b < p.n; ++b) {
    for (int64_t oy = 0; oy < p.oh; ++oy) {
      const int64_t y0 = p.y_start[oy], y1 = p.y_end[oy];
      for (int64_t ox = 0; ox < p.ow; ++ox, y_base += c) {
        const int64_t x0 = p.x_start[ox], x1 = p.x_end[ox];
        const double count = double((y1 - y0) * (x1 - x0));
        switch (kind) {
          case Pool::Max:
          case Pool::MaxGrad: {
            std::fill(at.begin(), at.end(), -1);
            for (int64_t iy = y0; iy < y1; ++iy) {
              for (int64_t ix = x0; ix < x1; ++ix) {
                const int64_t src = ((b * p.h + iy) * p.w + ix) * c;
                for (int64_t ci = 0; ci < c; ++ci) {
                  const double v = x[src + ci], m = acc[ci];
                  // The first value, then anything greater, or a NaN; once a NaN, it stays.
                  if (at[ci] < 0 || (!std::isnan(m) && (v > m || std::isnan(v)))) {
                    acc[ci] = v;
                    at[ci] = src + ci;
                  }
                }
              }
            }
            if (kind == Pool::Max) {
              for (int64_t ci = 0; ci < c; ++ci) out[y_base + ci] = at[ci] < 0 ? -INFINITY : float(acc[ci]);
            } else {
              for (int64_t ci = 0; ci < c; ++ci)
                if (at[ci] >= 0) dx[size_t(at[ci])] += dy[y_base + ci];
            }
            break;
          }
          case Pool::Avg: {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t iy = y0; iy < y1; ++iy)
              for (int64_t ix = x0; ix < x1; ++ix) {
                const float* row = x + ((b * p.h + iy) * p.w + ix) * c;
                for (int64_t ci = 0; ci < c; ++ci) acc[ci] += row[ci];
              }
            for (int64_t ci = 0; ci < c; ++ci) out[y_base + ci] = float(acc[ci] / count);
            break;
          }
          case Pool::AvgGrad: {
            for (int64_t iy = y0; iy < y1; ++iy)
              for (int64_t ix = x0; ix < x1; ++ix) {
                double* row = dx.data() + ((b * p.h + iy) * p.w + ix) * c;
                for (int64_t ci = 0; ci < c; ++ci) row[ci] += dy[y_base + ci] / count;
              }
            break;
          }
        }
      }
    }
  }
  if (grad) std::transform(dx.begin(), dx.end(), out, [](double v) { return float(v); });
}

}  // namespace kiln
