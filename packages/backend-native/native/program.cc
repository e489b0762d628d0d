// Elementwise programs: a single op, or a fusion group of them, run in one pass over the output in
// cache-sized blocks. Each block's inputs are read (in place where contiguous), every step computes
// a block-long array from earlier ones, and the outputs are stored: the intermediates of a fused
// group never leave the cache. Each step is one simple loop the compiler vectorizes; the loops
// are compiled for AVX-512, AVX2 and plain x86-64, and the CPU picks at load time (target_clones).
// A large program is cut into contiguous ranges of blocks, one per OpenMP thread.
//
// A program may also have a generated loop (a group: src/codegen.ts), which computes every step
// of an element before the next element, so intermediates stay in registers. Then each block is
// one call to it. Both compute each element with the same functions (elementwise.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <omp.h>

#include "elementwise.h"
#include "kernels.h"

namespace kiln {

namespace {

constexpr int kBlock = 512;
// A generated loop's block: 64 KiB of float32, long enough that the call costs nothing, short
// enough to share a program between threads evenly.
constexpr int64_t kGroupBlock = 1 << 14;
// Programs over at least this many elements (4 MiB of float32, a few hundred microseconds) are
// split between threads: below it, starting and joining the team costs about what it saves, and
// far more where several devices share the cores.
constexpr int64_t kParallelElements = 1 << 20;

template <float (*F)(float)>
inline void unary(const float* x, float* d, int n) {
  for (int i = 0; i < n; ++i) d[i] = F(x[i]);
}

// An operand is a block of values, or one value standing for the whole block (a broadcast
// scalar, or a value constant along the row): `xu` and `yu` say which. The conditions are loop
// invariant, so the compiler makes one vectorized loop per case (unswitching) and the one value
// stays in a register instead of being spread over a block first.
template <float (*F)(float, float)>
inline void binary(const float* x, bool xu, const float* y, bool yu, float* d, int n) {
  if (yu) {
    const float b = y[0];
    if (xu) {
      d[0] = F(x[0], b);
      return;
    }
    for (int i = 0; i < n; ++i) d[i] = F(x[i], b);
  } else if (xu) {
    const float a = x[0];
    for (int i = 0; i < n; ++i) d[i] = F(a, y[i]);
  } else {
    for (int i = 0; i < n; ++i) d[i] = F(x[i], y[i]);
  }
}

KILN_CLONES
void run_step(ElementOp op, const float* x, bool xu, const float* y, bool yu, const float* z, bool zu, float* d,
              int n) {
  switch (op) {
    case ElementOp::Neg: return unary<kiln_neg>(x, d, n);
    case ElementOp::Abs: return unary<kiln_abs>(x, d, n);
    case ElementOp::Sign: return unary<kiln_sign>(x, d, n);
    case ElementOp::Exp: return unary<kiln_exp>(x, d, n);
    case ElementOp::Log: return unary<kiln_log>(x, d, n);
    case ElementOp::Sqrt: return unary<kiln_sqrt>(x, d, n);
    case ElementOp::Rsqrt: return unary<kiln_rsqrt>(x, d, n);
    case ElementOp::Square: return unary<kiln_square>(x, d, n);
    case ElementOp::Reciprocal: return unary<kiln_reciprocal>(x, d, n);
    case ElementOp::Tanh: return unary<kiln_tanh>(x, d, n);
    case ElementOp::Sigmoid: return unary<kiln_sigmoid>(x, d, n);
    case ElementOp::Relu: return unary<kiln_relu>(x, d, n);
    case ElementOp::Sin: return unary<kiln_sin>(x, d, n);
    case ElementOp::Cos: return unary<kiln_cos>(x, d, n);
    case ElementOp::Floor: return unary<kiln_floor>(x, d, n);
    case ElementOp::Ceil: return unary<kiln_ceil>(x, d, n);
    case ElementOp::Round: return unary<kiln_round>(x, d, n);
    case ElementOp::IsNaN: return unary<kiln_isNaN>(x, d, n);
    case ElementOp::LogicalNot: return unary<kiln_logicalNot>(x, d, n);
    case ElementOp::ToBool: return unary<kiln_toBool>(x, d, n);
    case ElementOp::Copy: std::memcpy(d, x, size_t(n) * sizeof(float)); return;
    case ElementOp::Add: return binary<kiln_add>(x, xu, y, yu, d, n);
    case ElementOp::Sub: return binary<kiln_sub>(x, xu, y, yu, d, n);
    case ElementOp::Mul: return binary<kiln_mul>(x, xu, y, yu, d, n);
    case ElementOp::Div: return binary<kiln_div>(x, xu, y, yu, d, n);
    case ElementOp::Pow: return binary<kiln_pow>(x, xu, y, yu, d, n);
    case ElementOp::Maximum: return binary<kiln_maximum>(x, xu, y, yu, d, n);
    case ElementOp::Minimum: return binary<kiln_minimum>(x, xu, y, yu, d, n);
    case ElementOp::Equal: return binary<kiln_equal>(x, xu, y, yu, d, n);
    case ElementOp::NotEqual: return binary<kiln_notEqual>(x, xu, y, yu, d, n);
    case ElementOp::Less: return binary<kiln_less>(x, xu, y, yu, d, n);
    case ElementOp::LessEqual: return binary<kiln_lessEqual>(x, xu, y, yu, d, n);
    case ElementOp::Greater: return binary<kiln_greater>(x, xu, y, yu, d, n);
    case ElementOp::GreaterEqual: return binary<kiln_greaterEqual>(x, xu, y, yu, d, n);
    case ElementOp::LogicalAnd: return binary<kiln_logicalAnd>(x, xu, y, yu, d, n);
    case ElementOp::LogicalOr: return binary<kiln_logicalOr>(x, xu, y, yu, d, n);
    case ElementOp::LogicalXor: return binary<kiln_logicalXor>(x, xu, y, yu, d, n);
    case ElementOp::Where:
      for (int i = 0; i < n; ++i) d[i] = kiln_where(xu ? x[0] : x[i], yu ? y[0] : y[i], zu ? z[0] : z[i]);
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
  // Elements per block, and blocks per row (a row is `inner` long, cut into blocks).
  int64_t block;
  int64_t blocks_per_row;
  // The output a step computes into directly, if any (see run_program).
  std::vector<const ProgramValue*> direct;
};

// Walks rows over the outer axes like an odometer, keeping where each input's row starts.
struct Rows {
  const Run& r;
  int64_t row;
  std::vector<int64_t> index, base;

  Rows(const Run& run, int64_t first_row) : r(run), row(first_row), index(run.rank > 0 ? run.rank : 1, 0), base(run.n_inputs, 0) {
    for (int64_t rest = row, d = r.rank - 2; d >= 0; --d) {
      index[d] = rest % r.shape[d];
      rest /= r.shape[d];
      for (int i = 0; i < r.n_inputs; ++i) base[i] += index[d] * r.inputs[i].strides[d];
    }
  }

  void next() {
    ++row;
    for (int d = r.rank - 2; d >= 0; --d) {
      for (int i = 0; i < r.n_inputs; ++i) base[i] += r.inputs[i].strides[d];
      if (++index[d] < r.shape[d]) break;
      for (int i = 0; i < r.n_inputs; ++i) base[i] -= r.inputs[i].strides[d] * r.shape[d];
      index[d] = 0;
    }
  }
};

// Blocks [first, last) of the run, counted row by row, through the interpreter: each thread of a
// parallel run takes one contiguous range.
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
  Rows rows(r, first / r.blocks_per_row);

  for (int64_t b = first % r.blocks_per_row, left = last - first; left > 0; --left) {
    const int64_t o = rows.row * r.inner, j0 = b * kBlock;
    const int n = int(std::min<int64_t>(kBlock, r.inner - j0));
    for (int i = 0; i < n_inputs; ++i) {
      const ProgramValue& in = r.inputs[i];
      const int64_t step = rank > 0 ? in.strides[rank - 1] : 0;
      const int64_t at = rows.base[i] + j0 * step;
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
    rows.next();
  }
}

// Blocks [first, last) of the run, through a group's generated loop: each block is one call, with
// every input at its first element (the loop reads an input whose row stride is 0 as one value)
// and every output at the block's start.
void run_group_blocks(const Run& r, GroupFn group, int64_t first, int64_t last) {
  const int n_inputs = r.n_inputs, rank = r.rank;
  std::vector<const void*> in(n_inputs > 0 ? n_inputs : 1);
  std::vector<void*> out(r.n_outputs > 0 ? r.n_outputs : 1);
  Rows rows(r, first / r.blocks_per_row);
  for (int64_t b = first % r.blocks_per_row, left = last - first; left > 0; --left) {
    const int64_t o = rows.row * r.inner, j0 = b * r.block;
    const int64_t n = std::min<int64_t>(r.block, r.inner - j0);
    for (int i = 0; i < n_inputs; ++i) {
      const ProgramValue& v = r.inputs[i];
      const int64_t at = rows.base[i] + j0 * (rank > 0 ? v.strides[rank - 1] : 0);
      in[i] = v.is_bool ? static_cast<const void*>(static_cast<const uint8_t*>(v.data) + at)
                        : static_cast<const void*>(static_cast<const float*>(v.data) + at);
    }
    for (int k = 0; k < r.n_outputs; ++k) {
      const ProgramValue& v = r.outputs[k];
      out[k] = v.is_bool ? static_cast<void*>(static_cast<uint8_t*>(v.data) + o + j0)
                         : static_cast<void*>(static_cast<float*>(v.data) + o + j0);
    }
    group(n, in.data(), out.data());
    if (++b < r.blocks_per_row) continue;
    b = 0;
    rows.next();
  }
}

}  // namespace

void run_program(const ProgramStep* steps, int n_steps, const ProgramValue* inputs, int n_inputs,
                 const ProgramValue* outputs, int n_outputs, const int64_t* shape, int rank, int threads,
                 GroupFn group) {
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= shape[d];
  if (total == 0) return;
  const int64_t inner = rank > 0 ? shape[rank - 1] : 1;
  // A generated loop keeps a block's intermediates in registers, so its blocks need only be long
  // enough to make a call's cost vanish; the interpreter's must fit the cache with every step's.
  const int64_t block = group ? kGroupBlock : kBlock;
  Run r{steps, n_steps, inputs, n_inputs, outputs, n_outputs, shape, rank, inner, block, (inner + block - 1) / block, {}};
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
  const auto run = [&](int64_t first, int64_t last) {
    if (group) run_group_blocks(r, group, first, last);
    else run_blocks(r, first, last);
  };
  // Large programs are cut into one contiguous range of blocks per thread (OpenMP's, as many as
  // the device's `threads`, the count OpenBLAS and oneDNN are given too); every element is computed the same
  // way whichever thread computes it, so the results do not depend on the count. Small ones stay
  // on the calling thread, where waking the others would cost more than the work.
  const int64_t most = total >= kParallelElements ? (threads > 0 ? threads : omp_get_max_threads()) : 1;
  const int team = int(std::min(most, blocks));
  if (team <= 1) return run(0, blocks);
#pragma omp parallel num_threads(team)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    run(blocks * t / n, blocks * (t + 1) / n);
  }
}

}  // namespace kiln
