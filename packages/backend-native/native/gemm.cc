#include <cblas.h>

#include <mutex>

#include "kernels.h"

namespace kiln {

void sgemm_batched(bool trans_a, bool trans_b, int m, int n, int k, const float* a, const float* b,
                   float* c, const int32_t* a_offsets, const int32_t* b_offsets,
                   const int32_t* c_offsets, int batches) {
  // One call into OpenBLAS at a time: a product that runs off the JavaScript thread may meet a
  // small one made on it, and OpenBLAS's threaded build does not promise calls from two threads.
  static std::mutex one_at_a_time;
  const std::lock_guard<std::mutex> hold(one_at_a_time);
  // Leading dimensions of the stored (untransposed) operands, row-major.
  const int lda = trans_a ? m : k;
  const int ldb = trans_b ? k : n;
  for (int t = 0; t < batches; ++t) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0f, a + a_offsets[t], lda, b + b_offsets[t], ldb, 0.0f, c + c_offsets[t], n);
  }
}

}  // namespace kiln
