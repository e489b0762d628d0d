// Elementwise programs: a single op, or a fusion group of them, run in one pass over the output in
// cache-sized blocks. Each block's inputs are read (in place where contiguous), every step computes
// a block-long array from earlier ones, and the outputs are stored: the intermediates of a fused
// group never leave the cache. Each step is one simple loop the compiler vectorizes; the loops
// are compiled for AVX-512, AVX2 and plain x86-64, and the CPU picks at load time (target_clones).
// A large program is cut into contiguous ranges of blocks, one per OpenMP thread.
//
// Values are float32 (booleans as 0 and 1). Every step's result is a float, as storing it in a
// float32 array would leave it; transcendental functions are computed in double and rounded, as
// the reference does, so results agree with it to the last bit or within its tolerance.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <omp.h>

#include "kernels.h"

namespace kiln {

namespace {

constexpr int kBlock = 512;
// Programs over at least this many elements (4 MiB of float32, a few hundred microseconds) are
// split between threads: below it, starting and joining the team costs about what it saves, and
// far more where several devices share the cores.
constexpr int64_t kParallelElements = 1 << 20;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KILN_CLONES
#endif

inline float js_max(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a > b) return a;
  if (b > a) return b;
  return std::signbit(a) ? b : a;  // max(-0, +0) is +0
}

inline float js_min(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a < b) return a;
  if (b < a) return b;
  return std::signbit(a) ? a : b;  // min(-0, +0) is -0
}

// JavaScript's Math.pow, which differs from C's where the exponent is NaN or infinite with a base
// of magnitude one (C says 1, JavaScript NaN).
inline double js_pow(double a, double b) {
  if (std::isnan(b)) return NAN;
  if (std::isinf(b) && std::fabs(a) == 1.0) return NAN;
  return std::pow(a, b);
}

inline float sign(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }

template <typename F>
inline void unary(const float* x, float* d, int n, F f) {
  for (int i = 0; i < n; ++i) d[i] = f(x[i]);
}

// An operand is a block of values, or one value standing for the whole block (a broadcast
// scalar, or a value constant along the row): `xu` and `yu` say which. The conditions are loop
// invariant, so the compiler makes one vectorized loop per case (unswitching) and the one value
// stays in a register instead of being spread over a block first.
template <typename F>
inline void binary(const float* x, bool xu, const float* y, bool yu, float* d, int n, F f) {
  if (yu) {
    const float b = y[0];
    if (xu) {
      d[0] = f(x[0], b);
      return;
    }
    for (int i = 0; i < n; ++i) d[i] = f(x[i], b);
  } else if (xu) {
    const float a = x[0];
    for (int i = 0; i < n; ++i) d[i] = f(a, y[i]);
  } else {
    for (int i = 0; i < n; ++i) d[i] = f(x[i], y[i]);
  }
}

// Through double, as the reference computes, then rounded to float.
template <typename F>
inline void via_double(const float* x, float* d, int n, F f) {
  for (int i = 0; i < n; ++i) d[i] = static_cast<float>(f(static_cast<double>(x[i])));
}

KILN_CLONES
void run_step(ElementOp op, const float* x, bool xu, const float* y, bool yu, const float* z, bool zu, float* d,
              int n) {
  switch (op) {
    case ElementOp::Neg: return unary(x, d, n, [](float a) { return -a; });
    case ElementOp::Abs: return unary(x, d, n, [](float a) { return std::fabs(a); });
    case ElementOp::Sign: return unary(x, d, n, sign);
    case ElementOp::Exp: return via_double(x, d, n, [](double a) { return std::exp(a); });
    case ElementOp::Log: return via_double(x, d, n, [](double a) { return std::log(a); });
    case ElementOp::Sqrt: return unary(x, d, n, [](float a) { return std::sqrt(a); });
    case ElementOp::Rsqrt: return via_double(x, d, n, [](double a) { return 1.0 / std::sqrt(a); });
    case ElementOp::Square: return unary(x, d, n, [](float a) { return a * a; });
    case ElementOp::Reciprocal: return unary(x, d, n, [](float a) { return 1.0f / a; });
    case ElementOp::Tanh: return via_double(x, d, n, [](double a) { return std::tanh(a); });
    case ElementOp::Sigmoid: return via_double(x, d, n, [](double a) { return 1.0 / (1.0 + std::exp(-a)); });
    case ElementOp::Relu: return unary(x, d, n, [](float a) { return a > 0 || a != a ? a : 0.0f; });
    case ElementOp::Sin: return via_double(x, d, n, [](double a) { return std::sin(a); });
    case ElementOp::Cos: return via_double(x, d, n, [](double a) { return std::cos(a); });
    case ElementOp::Floor: return unary(x, d, n, [](float a) { return std::floor(a); });
    case ElementOp::Ceil: return unary(x, d, n, [](float a) { return std::ceil(a); });
    // The default rounding mode rounds halves to even, as the reference does.
    case ElementOp::Round: return unary(x, d, n, [](float a) { return std::nearbyint(a); });
    case ElementOp::IsNaN: return unary(x, d, n, [](float a) { return a != a ? 1.0f : 0.0f; });
    case ElementOp::LogicalNot: return unary(x, d, n, [](float a) { return a != 0 ? 0.0f : 1.0f; });
    case ElementOp::ToBool: return unary(x, d, n, [](float a) { return a != 0 ? 1.0f : 0.0f; });
    case ElementOp::Copy: std::memcpy(d, x, size_t(n) * sizeof(float)); return;
    case ElementOp::Add: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a + b; });
    case ElementOp::Sub: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a - b; });
    case ElementOp::Mul: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a * b; });
    case ElementOp::Div: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a / b; });
    case ElementOp::Pow:
      return binary(x, xu, y, yu, d, n, [](float a, float b) { return static_cast<float>(js_pow(a, b)); });
    case ElementOp::Maximum: return binary(x, xu, y, yu, d, n, js_max);
    case ElementOp::Minimum: return binary(x, xu, y, yu, d, n, js_min);
    case ElementOp::Equal: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a == b ? 1.0f : 0.0f; });
    case ElementOp::NotEqual: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a != b ? 1.0f : 0.0f; });
    case ElementOp::Less: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a < b ? 1.0f : 0.0f; });
    case ElementOp::LessEqual: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a <= b ? 1.0f : 0.0f; });
    case ElementOp::Greater: return binary(x, xu, y, yu, d, n, [](float a, float b) { return a > b ? 1.0f : 0.0f; });
    case ElementOp::GreaterEqual:
      return binary(x, xu, y, yu, d, n, [](float a, float b) { return a >= b ? 1.0f : 0.0f; });
    case ElementOp::LogicalAnd:
      return binary(x, xu, y, yu, d, n, [](float a, float b) { return a != 0 && b != 0 ? 1.0f : 0.0f; });
    case ElementOp::LogicalOr:
      return binary(x, xu, y, yu, d, n, [](float a, float b) { return a != 0 || b != 0 ? 1.0f : 0.0f; });
    case ElementOp::LogicalXor:
      return binary(x, xu, y, yu, d, n, [](float a, float b) { return (a != 0) != (b != 0) ? 1.0f : 0.0f; });
    case ElementOp::Where:
      for (int i = 0; i < n; ++i) d[i] = (xu ? x[0] : x[i]) != 0 ? (yu ? y[0] : y[i]) : (zu ? z[0] : z[i]);
      return;
  }
}

// What every block of one run shares, worked out once: the program, its values, and which output
// each step may compute straight into.
struct Run {
  const ProgramStep* steps;
  int n_steps;
  const ProgramValue* inputs;
  int n_inputs;
  const ProgramValue* outputs;
  int n_outputs;
  const int64_t* shape;
  int rank;
  int64_t inner;
  int64_t blocks_per_row;
  // The output a step computes into directly, if any (see run_program).
  std::vector<const ProgramValue*> direct;
};

// Blocks [first, last) of the run, counted row by row (a row is `inner` long, cut into blocks of
// kBlock): each thread of a parallel run takes one contiguous range.
void run_blocks(const Run& r, int64_t first, int64_t last) {
  const int n_inputs = r.n_inputs, n_steps = r.n_steps, rank = r.rank;
  const int slots = n_inputs + n_steps;
  // Block-long arrays for inputs that must be gathered or widened, and for every step's result.
  thread_local std::vector<float> scratch;
  scratch.resize(size_t(slots) * kBlock);
  const auto block = [&](int slot) { return scratch.data() + size_t(slot) * kBlock; };
  std::vector<const float*> value(slots);
  // A uniform slot holds one value for the whole block: an input constant along the row (a
  // broadcast scalar, a bias along its row), or a step computed from uniform slots only.
  std::vector<char> uniform(slots, 0);
  // The first row's index over the outer axes, and where each input's row starts.
  int64_t row = first / r.blocks_per_row;
  std::vector<int64_t> index(rank > 0 ? rank : 1, 0);
  std::vector<int64_t> base(n_inputs, 0);
  for (int64_t rest = row, d = rank - 2; d >= 0; --d) {
    index[d] = rest % r.shape[d];
    rest /= r.shape[d];
    for (int i = 0; i < n_inputs; ++i) base[i] += index[d] * r.inputs[i].strides[d];
  }

  for (int64_t b = first % r.blocks_per_row, left = last - first; left > 0; --left) {
    const int64_t o = row * r.inner, j0 = b * kBlock;
    const int n = int(std::min<int64_t>(kBlock, r.inner - j0));
    for (int i = 0; i < n_inputs; ++i) {
      const ProgramValue& in = r.inputs[i];
      const int64_t step = rank > 0 ? in.strides[rank - 1] : 0;
      const int64_t at = base[i] + j0 * step;
      float* buf = block(i);
      uniform[i] = step == 0;
      if (!in.is_bool && step == 1) {
        value[i] = static_cast<const float*>(in.data) + at;  // read in place
        continue;
      }
      const int count = step == 0 ? 1 : n;
      if (in.is_bool) {
        const uint8_t* p = static_cast<const uint8_t*>(in.data) + at;
        for (int k = 0; k < count; ++k, p += step) buf[k] = *p ? 1.0f : 0.0f;
      } else {
        const float* p = static_cast<const float*>(in.data) + at;
        for (int k = 0; k < count; ++k, p += step) buf[k] = *p;
      }
      value[i] = buf;
    }
    for (int s = 0; s < n_steps; ++s) {
      const ProgramStep& st = r.steps[s];
      const bool xu = uniform[st.a], yu = st.b >= 0 && uniform[st.b], zu = st.c >= 0 && uniform[st.c];
      const bool all = xu && (st.b < 0 || yu) && (st.c < 0 || zu);
      float* d = r.direct[s] && !all ? static_cast<float*>(r.direct[s]->data) + o + j0 : block(n_inputs + s);
      run_step(st.op, value[st.a], xu, st.b >= 0 ? value[st.b] : nullptr, yu, st.c >= 0 ? value[st.c] : nullptr, zu,
               d, all ? 1 : n);
      value[n_inputs + s] = d;
      uniform[n_inputs + s] = all;
    }
    for (int k = 0; k < r.n_outputs; ++k) {
      const ProgramValue& out = r.outputs[k];
      const float* v = value[out.slot];
      const bool one = uniform[out.slot];
      if (!one && r.direct[out.slot - n_inputs] == &out) continue;  // computed in place
      if (out.is_bool) {
        uint8_t* p = static_cast<uint8_t*>(out.data) + o + j0;
        if (one) std::fill(p, p + n, v[0] != 0 ? 1 : 0);
        else for (int e = 0; e < n; ++e) p[e] = v[e] != 0 ? 1 : 0;
      } else {
        float* p = static_cast<float*>(out.data) + o + j0;
        if (one) std::fill(p, p + n, v[0]);
        else std::memcpy(p, v, size_t(n) * sizeof(float));
      }
    }
    if (++b < r.blocks_per_row) continue;
    b = 0;
    ++row;
    // The next row: advance the outer index like an odometer, each input by its strides.
    for (int d = rank - 2; d >= 0; --d) {
      for (int i = 0; i < n_inputs; ++i) base[i] += r.inputs[i].strides[d];
      if (++index[d] < r.shape[d]) break;
      for (int i = 0; i < n_inputs; ++i) base[i] -= r.inputs[i].strides[d] * r.shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace

void run_program(const ProgramStep* steps, int n_steps, const ProgramValue* inputs, int n_inputs,
                 const ProgramValue* outputs, int n_outputs, const int64_t* shape, int rank, int threads) {
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= shape[d];
  if (total == 0) return;
  Run r{steps, n_steps, inputs, n_inputs, outputs, n_outputs, shape, rank, rank > 0 ? shape[rank - 1] : 1, 0, {}};
  r.blocks_per_row = (r.inner + kBlock - 1) / kBlock;
  // The output a step computes into directly, if any: the first float32 output storing it. Its
  // block goes to memory once, with no copy after. Only where no later step reads an input: the
  // memory planner may give an output the memory of an input, and an input's block is read in
  // place, so a later step would read what the output just overwrote.
  int last_input_read = -1;
  for (int s = 0; s < n_steps; ++s)
    if (steps[s].a < n_inputs || (steps[s].b >= 0 && steps[s].b < n_inputs) || (steps[s].c >= 0 && steps[s].c < n_inputs))
      last_input_read = s;
  r.direct.assign(n_steps, nullptr);
  for (int k = 0; k < n_outputs; ++k) {
    const int s = outputs[k].slot - n_inputs;
    if (!outputs[k].is_bool && !r.direct[s] && s >= last_input_read) r.direct[s] = &outputs[k];
  }
  const int64_t blocks = total / r.inner * r.blocks_per_row;
  // Large programs are cut into one contiguous range of blocks per thread (OpenMP's, as many as
  // the device's `threads`, the count OpenBLAS and oneDNN are given too); every element is computed the same
  // way whichever thread computes it, so the results do not depend on the count. Small ones stay
  // on the calling thread, where waking the others would cost more than the work.
  const int64_t most = total >= kParallelElements ? (threads > 0 ? threads : omp_get_max_threads()) : 1;
  const int team = int(std::min(most, blocks));
  if (team <= 1) return run_blocks(r, 0, blocks);
#pragma omp parallel num_threads(team)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    run_blocks(r, blocks * t / n, blocks * (t + 1) / n);
  }
}

}  // namespace kiln
