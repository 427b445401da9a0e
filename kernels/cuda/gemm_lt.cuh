// The row-major cuBLASLt product under gemm() and the fused LM-head loss.
// Leading dimensions are explicit so callers can multiply strided row blocks.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace qtrain::cuda {

// c[M,N] (row stride ldc) = alpha * op(a) @ op(b) + beta * c.
//   a: [M,K] row stride lda, or [K,M] when trans_a;  b: [K,N] row stride ldb, or [N,K] when trans_b.
// a and b share one dtype: BF16 (tensor cores) or F32, c BF16 or F32, F32 accumulation;
// or I8 a and b (a b^T only) into an I32 c, exact int32 accumulation (LLM.int8).
// bias (BF16/F32 c only): a [N] vector of c's dtype, 16-byte aligned, added to every row in the
// epilogue (F32, before c is rounded): c = alpha * op(a) @ op(b) + beta * c + bias.
// Returns false, having run nothing, when cuBLASLt has no algorithm for that bias epilogue at this
// shape (asked once per shape; the caller adds the bias itself); true otherwise. Without a bias a
// shape with no algorithm is an Error.
bool gemm_rowmajor(void* c, DType ct, int64_t ldc, const void* a, int64_t lda, bool trans_a, const void* b,
                   int64_t ldb, bool trans_b, DType abt, int64_t M, int64_t N, int64_t K, float alpha,
                   float beta, const void* bias = nullptr);

}  // namespace qtrain::cuda
