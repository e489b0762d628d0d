/**
 * WGSL helpers every kernel may call. WGSL leaves NaN and infinity behaviour and the accuracy of
 * sin, cos and log loose (sin may be off by 2^-11), while kiln's conformance kit holds devices to
 * float64 references within a few float32 roundings; so the special cases are spelled out with
 * bit tests, and sin, cos and log are computed here with explicit range reduction.
 *
 * NaN and infinity come from bit patterns mixed with a uniform load (`P(0u) & 0u`): a WGSL
 * const-expression that evaluates to NaN or infinity is a shader-creation error.
 */
export const MATH_WGSL = /* wgsl */ `
fn nan_() -> f32 { return bitcast<f32>(0x7fc00000u | (P(0u) & 0u)); }
fn inf_() -> f32 { return bitcast<f32>(0x7f800000u | (P(0u) & 0u)); }
fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isinf_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn b2u(b: bool) -> u32 { return select(0u, 1u, b); }

fn fmax_(a: f32, b: f32) -> f32 { if (isnan_(a) || isnan_(b)) { return nan_(); } return max(a, b); }
fn fmin_(a: f32, b: f32) -> f32 { if (isnan_(a) || isnan_(b)) { return nan_(); } return min(a, b); }
fn fsign_(x: f32) -> f32 { if (isnan_(x)) { return x; } return sign(x); }
fn frelu_(x: f32) -> f32 { if (x > 0.0 || isnan_(x)) { return x; } return 0.0; }
fn fsqrt_(x: f32) -> f32 { if (x < 0.0) { return nan_(); } if (isinf_(x)) { return x; } return sqrt(x); }
fn frsqrt_(x: f32) -> f32 { return 1.0 / fsqrt_(x); }
fn fexp_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  if (x > 88.8) { return inf_(); }
  if (x < -104.0) { return 0.0; }
  return exp(x);
}
fn ftanh_(x: f32) -> f32 {
  if (isnan_(x)) { return x; }
  let a = abs(x);
  if (a > 9.0) { return sign(x); }
  // 1 - 2 / (e^2a + 1) keeps the absolute error near one rounding, which is what the kit asks.
  let t = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
  return select(t, -t, x < 0.0);
}
fn fsigmoid_(x: f32) -> f32 { if (isnan_(x)) { return x; } return 1.0 / (1.0 + fexp_(-x)); }

// log with relative accuracy everywhere (also next to 1, where Box-Muller needs it):
// x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(f / (2 + f)) with f = m - 1 exact.
fn flog_(x: f32) -> f32 {
  if (isnan_(x) || x < 0.0) { return nan_(); }
  if (x == 0.0) { return -inf_(); }
  if (isinf_(x)) { return x; }
  let bits = bitcast<u32>(x);
  var e = i32((bits >> 23u) & 0xffu) - 127;
  var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
  if (e == -127) { return log(x); }
  if (m > 1.4142135) { m = m * 0.5; e = e + 1; }
  let f = m - 1.0;
  let s = f / (2.0 + f);
  let z = s * s;
  let p = s * (2.0 + z * (0.6666667 + z * (0.4 + z * (0.2857143 + z * 0.22222222))));
  let fe = f32(e);
  return fe * 0.693145751953125 + (fe * 1.4286068e-06 + p);
}

// sin and cos: Cody-Waite reduction by pi/2 split in three (exact products for |x| < 2^11 pi),
// then Taylor polynomials on [-pi/4, pi/4], accurate to a few float32 roundings.
fn sinpoly_(r: f32) -> f32 {
  let z = r * r;
  return r + r * z * (-0.16666667 + z * (0.008333334 + z * (-0.0001984127 + z * 2.7557319e-06)));
}
fn cospoly_(r: f32) -> f32 {
  let z = r * r;
  return 1.0 + z * (-0.5 + z * (0.041666668 + z * (-0.0013888889 + z * 2.4801587e-05)));
}
fn ftrig_(x: f32, shift: i32) -> f32 {
  if (isnan_(x) || isinf_(x)) { return nan_(); }
  let q = round(x * 0.63661975);
  var r = x - q * 1.57080078125;
  r = r - q * -4.4535846e-06;
  r = r - q * -8.7055163e-10;
  let n = (i32(q) + shift) & 3;
  if (n == 0) { return sinpoly_(r); }
  if (n == 1) { return cospoly_(r); }
  if (n == 2) { return -sinpoly_(r); }
  return -cospoly_(r);
}
fn fsin_(x: f32) -> f32 { return ftrig_(x, 0); }
fn fcos_(x: f32) -> f32 { return ftrig_(x, 1); }
// cos(2 pi u) for u in [0, 1): the quadrant comes off u exactly, so the angle carries no rounding.
fn fcos2pi_(u: f32) -> f32 {
  let q = round(u * 4.0);
  let r = (u - q * 0.25) * 6.2831855;
  let n = (i32(q) + 1) & 3;
  if (n == 0) { return sinpoly_(r); }
  if (n == 1) { return cospoly_(r); }
  if (n == 2) { return -sinpoly_(r); }
  return -cospoly_(r);
}

// JavaScript's Math.pow on float32, special cases included.
fn fpow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (isnan_(a) || isnan_(b)) { return nan_(); }
  let ab = abs(a);
  if (isinf_(b)) {
    if (ab == 1.0) { return nan_(); }
    if ((ab > 1.0) == (b > 0.0)) { return inf_(); }
    return 0.0;
  }
  let bint = floor(b) == b;
  let bodd = bint && abs(b) < 16777216.0 && fract(b * 0.5) != 0.0;
  let neg = bitcast<u32>(a) >= 0x80000000u;
  if (a == 0.0 || isinf_(a)) {
    let big = (a == 0.0) != (b > 0.0);
    let mag = select(0.0, inf_(), big);
    return select(mag, -mag, neg && bodd);
  }
  if (a < 0.0 && !bint) { return nan_(); }
  let r = exp2(b * log2(ab));
  return select(r, -r, a < 0.0 && bodd);
}

fn idiv_(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } return a / b; }
fn f2i_(x: f32) -> i32 {
  if (isnan_(x)) { return 0; }
  if (x >= 2147483647.0) { return 2147483647; }
  if (x <= -2147483648.0) { return -2147483647 - 1; }
  return i32(trunc(x));
}
`;
