// The native kernels, on plain pointers: addon.cc checks the typed arrays and calls these.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kiln {

// C[b] = op(A[b]) x op(B[b]) for each batch b, row-major, with OpenBLAS's sgemm. Offsets are in
// elements, one per batch (broadcast batches repeat an offset).
void sgemm_batched(bool trans_a, bool trans_b, int m, int n, int k, const float* a, const float* b,
                   float* c, const int32_t* a_offsets, const int32_t* b_offsets,
                   const int32_t* c_offsets, int batches);

enum class Binary : int { Add = 0, Sub = 1, Mul = 2, Div = 3, Maximum = 4, Minimum = 5 };

// out[i] = a[i] op b[i] over n float32 elements (same shape); `b_scalar` reads b[0] for every i.
void binary_f32(Binary op, const float* a, const float* b, bool b_scalar, float* out, size_t n);

}  // namespace kiln
