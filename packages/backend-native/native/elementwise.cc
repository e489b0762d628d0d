#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace kiln {

namespace {

// One loop per op, so the compiler vectorizes each; NaN handling follows the reference (a NaN
// operand gives NaN for maximum and minimum).
template <typename F>
void loop(const float* a, const float* b, bool b_scalar, float* out, size_t n, F f) {
  if (b_scalar) {
    const float s = b[0];
    for (size_t i = 0; i < n; ++i) out[i] = f(a[i], s);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  }
}

inline float nan_max(float x, float y) { return std::isnan(x) || std::isnan(y) ? NAN : (x > y ? x : y); }
inline float nan_min(float x, float y) { return std::isnan(x) || std::isnan(y) ? NAN : (x < y ? x : y); }

}  // namespace

void binary_f32(Binary op, const float* a, const float* b, bool b_scalar, float* out, size_t n) {
  switch (op) {
    case Binary::Add: return loop(a, b, b_scalar, out, n, [](float x, float y) { return x + y; });
    case Binary::Sub: return loop(a, b, b_scalar, out, n, [](float x, float y) { return x - y; });
    case Binary::Mul: return loop(a, b, b_scalar, out, n, [](float x, float y) { return x * y; });
    case Binary::Div: return loop(a, b, b_scalar, out, n, [](float x, float y) { return x / y; });
    case Binary::Maximum: return loop(a, b, b_scalar, out, n, nan_max);
    case Binary::Minimum: return loop(a, b, b_scalar, out, n, nan_min);
  }
}

}  // namespace kiln
