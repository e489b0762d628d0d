// matmul on oneDNN's matmul primitive (the 2.x API). Its kernels are generated for the CPU at hand
// (AVX-512 brgemm here): on this AVX-512 machine, at the MNIST MLP's products (128 x 784 x 256 and
// smaller), 1.1-1.6x OpenBLAS on its own AVX-512 kernels and 2-2.7x OpenBLAS held to AVX2, and the
// same as OpenBLAS where both use AVX2. Operands are read in place: batch dimensions broadcast
// as numpy does (oneDNN takes a dimension of 1 as broadcast), a transposed operand is read
// through swapped strides, and the output is written row-major. A node's primitive is made once,
// when it is compiled.
//
// A fusedMatmul node's bias (an epilogue that starts by adding a row of the output's width) is the
// primitive's own bias argument, added by its kernel as it stores each block: measured free, where
// a separate pass over the output costs up to 20% of a memory-bound product (src/fused-matmul.ts).
#include <omp.h>

#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"
#include "onednn.h"

namespace kiln {

namespace {

using dnnl::memory;

// The logical [batch..., rows, cols] view of an operand stored row-major as `stored` (its last two
// dimensions swapped when transposed), with its batch dimensions padded with 1s to `rank`.
memory::desc operand(const std::vector<int64_t>& stored, size_t rank, bool transposed) {
  const size_t pad = rank - stored.size();
  memory::dims dims(rank, 1), strides(rank, 0);
  int64_t stride = 1;
  for (size_t i = stored.size(); i-- > 0;) {
    dims[pad + i] = stored[i];
    strides[pad + i] = stride;
    stride *= stored[i];
  }
  for (size_t i = 0; i < pad; ++i) strides[i] = stride;
  if (transposed) {
    std::swap(dims[rank - 2], dims[rank - 1]);
    std::swap(strides[rank - 2], strides[rank - 1]);
  }
  return memory::desc(dims, memory::data_type::f32, strides);
}

}  // namespace

struct MatMul::Impl {
  memory::desc src, weights, bias, dst;
  dnnl::primitive primitive;
  // The primitive's working memory, its own: see Conv::Impl (a primitive run off the thread that
  // made it found no per-thread scratchpad there).
  memory scratchpad;
};

MatMul::MatMul(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const std::vector<int64_t>& out,
               bool trans_a, bool trans_b, const std::vector<int64_t>& bias)
    : impl_(std::make_unique<Impl>()) {
  const NoProfilerSignal held;
  const size_t rank = out.size();
  impl_->src = operand(a, rank, trans_a);
  impl_->weights = operand(b, rank, trans_b);
  impl_->dst = operand(out, rank, false);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto desc = [&] {
    if (bias.empty()) return dnnl::matmul::desc(impl_->src, impl_->weights, impl_->dst);
    impl_->bias = operand(bias, rank, false);
    return dnnl::matmul::desc(impl_->src, impl_->weights, impl_->bias, impl_->dst);
  };
  dnnl::matmul::primitive_desc pd(desc(), attr, cpu());
  // oneDNN falls back to its reference loops for what its kernels do not cover (a bias that is not
  // a row: 318 ms where the row took 0.27, at 128 x 784 x 256): OpenBLAS and a native pass do
  // better, so refuse those.
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
    throw std::invalid_argument("createMatmul: oneDNN has only its reference implementation for this product");
  impl_->primitive = dnnl::matmul(pd);
  impl_->scratchpad = memory(pd.scratchpad_desc(), cpu());
}

MatMul::~MatMul() = default;

void MatMul::run(const float* a, const float* b, const float* bias, float* out, int threads) {
  const NoProfilerSignal held;
  const Impl& p = *impl_;
  // OpenMP's thread count is per calling thread: a device in a worker thread keeps to its share.
  if (threads > 0) omp_set_num_threads(threads);
  thread_local dnnl::stream stream(cpu());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(p.src, cpu(), const_cast<float*>(a))},
                                       {DNNL_ARG_WEIGHTS, memory(p.weights, cpu(), const_cast<float*>(b))},
                                       {DNNL_ARG_DST, memory(p.dst, cpu(), out)},
                                       {DNNL_ARG_SCRATCHPAD, p.scratchpad}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(p.bias, cpu(), const_cast<float*>(bias)));
  p.primitive.execute(stream, args);
  stream.wait();
}

}  // namespace kiln
