// The native kernels, on plain pointers: addon.cc checks the typed arrays and calls these.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

// A vectorized loop compiled three times, for AVX-512, AVX2 and plain x86-64, the CPU's choice
// made when the addon loads (GCC's function multiversioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KILN_CLONES
#endif

namespace kiln {

// C[b] = op(A[b]) x op(B[b]) for each batch b, row-major, with OpenBLAS's sgemm. Offsets are in
// elements, one per batch (broadcast batches repeat an offset).
void sgemm_batched(bool trans_a, bool trans_b, int m, int n, int k, const float* a, const float* b,
                   float* c, const int32_t* a_offsets, const int32_t* b_offsets,
                   const int32_t* c_offsets, int batches);

// A matmul node on oneDNN: out[t] = op(a[t]) x op(b[t]) (+ bias) over the output's batch
// dimensions, the operands' batch dimensions broadcast as numpy does. Shapes are as stored,
// row-major (a transposed operand's last two dimensions swapped), of rank 2 or more; the output's
// rank is the largest. A bias (a fusedMatmul's) is a row of the output's width, broadcast to every
// row. Throws when oneDNN cannot make the primitive, or only as its reference loops.
class MatMul {
 public:
  MatMul(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const std::vector<int64_t>& out,
         bool trans_a, bool trans_b, const std::vector<int64_t>& bias = {});
  ~MatMul();
  // `bias` is null for a primitive made without one.
  void run(const float* a, const float* b, const float* bias, float* out, int threads);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The ops of an elementwise program (src/program.ts numbers them the same way).
enum class ElementOp : int32_t {
  Neg = 0, Abs, Sign, Exp, Log, Sqrt, Rsqrt, Square, Reciprocal, Tanh, Sigmoid, Relu, Sin, Cos,
  Floor, Ceil, Round, IsNaN, LogicalNot, ToBool, Copy,
  Add = 32, Sub, Mul, Div, Pow, Maximum, Minimum, Equal, NotEqual, Less, LessEqual, Greater,
  GreaterEqual, LogicalAnd, LogicalOr, LogicalXor,
  Where = 64,
};
constexpr int32_t kLastUnary = int32_t(ElementOp::Copy);
constexpr int32_t kLastBinary = int32_t(ElementOp::LogicalXor);

// One step: `op` of the values in slots a, b, c (-1 where unused). Slots number the program's
// inputs first, then its steps' results.
struct ProgramStep {
  ElementOp op;
  int32_t a, b, c;
};

// An input (with its element strides over the output's shape, 0 where it broadcasts) or an output
// (with the slot it stores); float32, or bool as one byte.
struct ProgramValue {
  void* data;
  bool is_bool;
  const int64_t* strides;
  int32_t slot;
};

// A program's generated loop (src/codegen.ts): `n` elements of one row, each input at its first
// (float32, or bool as one byte; an input whose stride along the row is 0 is read as one value),
// each output at its first.
using GroupFn = void (*)(int64_t n, const void* const* inputs, void* const* outputs);

// Runs the program over every element of `shape`, in blocks: outputs are contiguous. A large one
// runs on up to `threads` OpenMP threads (0 or less: OpenMP's default). With `group`, each block is
// one call to it rather than one pass per step.
void run_program(const ProgramStep* steps, int n_steps, const ProgramValue* inputs, int n_inputs,
                 const ProgramValue* outputs, int n_outputs, const int64_t* shape, int rank, int threads,
                 GroupFn group = nullptr);

enum class Reduce : int32_t { Sum = 0, Mean = 1, Prod = 2, Max = 3, Min = 4 };

// out[o, i] = reduction over r of x[o, r, i], x seen as [outer, reduced, inner].
void reduce_f32(Reduce kind, const float* x, int64_t outer, int64_t reduced, int64_t inner, float* out);

// Softmax (or logSoftmax) along the middle axis of x seen as [outer, n, inner], into out of the
// same shape; on up to `threads` OpenMP threads when large (0 or less: OpenMP's default).
void softmax_f32(const float* x, int64_t outer, int64_t n, int64_t inner, bool log, float* out, int threads);

enum class Pool : int32_t { Max = 0, Avg = 1, MaxGrad = 2, AvgGrad = 3 };

// NHWC pooling windows: input [n, h, w, c], output [n, oh, ow, c]; output row oy reads input rows
// [y_start[oy], y_end[oy]) and column ox columns [x_start[ox], x_end[ox]) (clipped to the input).
struct PoolWindows {
  int64_t n, h, w, c, oh, ow;
  const int32_t *y_start, *y_end, *x_start, *x_end;
};

// Max and Avg: out = pool(x) ([n, oh, ow, c]). MaxGrad: out = dx from x and dy; AvgGrad: out = dx
// from dy ([n, h, w, c]). x is unused for AvgGrad, dy for the forward kinds.
void pool_f32(Pool kind, const PoolWindows& windows, const float* x, const float* dy, float* out);

enum class ConvKind : int32_t { Forward = 0, BackwardData = 1, BackwardWeights = 2 };

// A convolution's shapes: input [n, h, w, c], filter [kh, kw, c, f], output [n, oh, ow, f]; kiln's
// dilation (1 = none) and padding before and after each spatial axis.
struct ConvGeometry {
  int64_t n, h, w, c, kh, kw, f, oh, ow, sh, sw, dh, dw, pad_top, pad_bottom, pad_left, pad_right;
};

// One convolution node on oneDNN: its primitive made once, run on each call. Forward: (x, filter)
// to y; BackwardData: (dy, filter) to dx; BackwardWeights: (x, dy) to dfilter. Throws
// dnnl::error when oneDNN cannot make the primitive.
class Conv {
 public:
  Conv(ConvKind kind, const ConvGeometry& geometry);
  ~Conv();
  void run(const float* a, const float* b, float* out, int threads);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
