// The rank-r truncated SVD of a matrix, split into two factors the way peft's
// _low_rank_decomposition does (LoftQ initialisation, models/loftq.h):
//   m [rows, cols] ~ b a,  b [rows, r] = U[:, :r] sqrt(S[:r]),  a [r, cols] = sqrt(S[:r]) Vh[:r, :]
// All F32, on one device; r = b.size(1). Factors past min(rows, cols) are zero.
// CPU (the reference): LAPACK's sgesdd, a full SVD (kernels/cpu/svd.cpp).
// CUDA: cuSOLVER's eigensolver on the Gram matrix in F64 (kernels/cuda/svd.cu;
// why not a GPU SVD routine is said there).
// Signs of singular vectors are arbitrary; both backends fix them the same way
// (sklearn's svd_flip): each column j of b has its largest-magnitude entry (the
// first, on ties) positive, a's row j flipped with it. So the two agree on b and
// a themselves, not only on b a: the adapter's gradients depend on the factors
// (a LoftQ start made on the GPU trains like one made on the CPU).
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

QT_OP(void, low_rank_svd, (Tensor b, Tensor a, Tensor m))

}  // namespace qtrain
