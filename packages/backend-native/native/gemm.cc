#include <cblas.h>

#include "kernels.h"

namespace kiln {

void sgemm_batched(bool trans_a, bool trans_b, int m, int n, int k, const float* a, const float* b,
                   float* c, const int32_t* a_offsets, const int32_t* b_offsets,
                   const int32_t* c_offsets, int batches) {
  // Leading dimensions of the stored (untransposed) operands, row-major.
  const int lda = trans_a ? m : k;
  const int ldb = trans_b ? k : n;
  for (int t = 0; t < batches; ++t) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0f, a + a_offsets[t], lda, b + b_offsets[t], ldb, 0.0f, c + c_offsets[t], n);
  }
}

}  // namespace kiln
