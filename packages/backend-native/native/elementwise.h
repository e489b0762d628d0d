/* The elementwise ops of a native program, one value at a time: what every element of a step
 * computes. Both ways of running a program use these and nothing else, so they agree to the bit:
 * the blocked interpreter (program.cc, one loop per step) and the loops generated for a fusion
 * group (src/codegen.ts, one loop for the whole group, compiled on the machine at run time). The
 * header is C as well as C++ because the generated loops are C: it compiles in a fraction of the
 * time.
 *
 * Values are float32 (booleans as 0 and 1). Transcendental functions are computed in double and
 * rounded, as the reference does, so results agree with it to the last bit or within its
 * tolerance. Nothing here may be contracted into a fused multiply-add: the generated loops are
 * compiled with -ffp-contract=off, and the interpreter's steps are separate loops. */
#ifndef KILN_ELEMENTWISE_H
#define KILN_ELEMENTWISE_H

#include <math.h>

static inline float kiln_neg(float a) { return -a; }
static inline float kiln_abs(float a) { return fabsf(a); }
static inline float kiln_sign(float a) { return a > 0 ? 1.0f : a < 0 ? -1.0f : a; }
static inline float kiln_exp(float a) { return (float)exp((double)a); }
static inline float kiln_log(float a) { return (float)log((double)a); }
static inline float kiln_sqrt(float a) { return sqrtf(a); }
static inline float kiln_rsqrt(float a) { return (float)(1.0 / sqrt((double)a)); }
static inline float kiln_square(float a) { return a * a; }
static inline float kiln_reciprocal(float a) { return 1.0f / a; }
static inline float kiln_tanh(float a) { return (float)tanh((double)a); }
static inline float kiln_sigmoid(float a) { return (float)(1.0 / (1.0 + exp(-(double)a))); }
static inline float kiln_relu(float a) { return a > 0 || a != a ? a : 0.0f; }
static inline float kiln_sin(float a) { return (float)sin((double)a); }
static inline float kiln_cos(float a) { return (float)cos((double)a); }
static inline float kiln_floor(float a) { return floorf(a); }
static inline float kiln_ceil(float a) { return ceilf(a); }
/* The default rounding mode rounds halves to even, as the reference does. */
static inline float kiln_round(float a) { return nearbyintf(a); }
static inline float kiln_isNaN(float a) { return a != a ? 1.0f : 0.0f; }
static inline float kiln_logicalNot(float a) { return a != 0 ? 0.0f : 1.0f; }
static inline float kiln_toBool(float a) { return a != 0 ? 1.0f : 0.0f; }
static inline float kiln_copy(float a) { return a; }

static inline float kiln_add(float a, float b) { return a + b; }
static inline float kiln_sub(float a, float b) { return a - b; }
static inline float kiln_mul(float a, float b) { return a * b; }
static inline float kiln_div(float a, float b) { return a / b; }
/* JavaScript's Math.pow, which differs from C's where the exponent is NaN or infinite with a base
 * of magnitude one (C says 1, JavaScript NaN). */
static inline float kiln_pow(float a, float b) {
  if (b != b) return NAN;
  if (isinf(b) && fabs((double)a) == 1.0) return NAN;
  return (float)pow((double)a, (double)b);
}
/* JavaScript's Math.max and Math.min: NaN wins, and +0 is above -0. */
static inline float kiln_maximum(float a, float b) {
  if (a != a || b != b) return NAN;
  if (a > b) return a;
  if (b > a) return b;
  return signbit(a) ? b : a;
}
static inline float kiln_minimum(float a, float b) {
  if (a != a || b != b) return NAN;
  if (a < b) return a;
  if (b < a) return b;
  return signbit(a) ? a : b;
}
static inline float kiln_equal(float a, float b) { return a == b ? 1.0f : 0.0f; }
static inline float kiln_notEqual(float a, float b) { return a != b ? 1.0f : 0.0f; }
static inline float kiln_less(float a, float b) { return a < b ? 1.0f : 0.0f; }
static inline float kiln_lessEqual(float a, float b) { return a <= b ? 1.0f : 0.0f; }
static inline float kiln_greater(float a, float b) { return a > b ? 1.0f : 0.0f; }
static inline float kiln_greaterEqual(float a, float b) { return a >= b ? 1.0f : 0.0f; }
static inline float kiln_logicalAnd(float a, float b) { return a != 0 && b != 0 ? 1.0f : 0.0f; }
static inline float kiln_logicalOr(float a, float b) { return a != 0 || b != 0 ? 1.0f : 0.0f; }
static inline float kiln_logicalXor(float a, float b) { return (a != 0) != (b != 0) ? 1.0f : 0.0f; }

static inline float kiln_where(float c, float a, float b) { return c != 0 ? a : b; }

#endif
