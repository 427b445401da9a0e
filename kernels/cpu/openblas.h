// OpenBLAS, loaded at first use. Why not linked: OpenBLAS picks its kernels
// (by CPUID) when the library loads, and the Debian 12 build (0.3.21) does not
// know recent Xeons (e.g. Emerald Rapids, model 0xCF): it falls back to SSE3
// "Prescott" kernels, 10x slower. Loading it ourselves lets us first set
// OPENBLAS_CORETYPE from the CPU's actual features (unless the user set it).
#pragma once
#include <cstdint>
#include <string>

namespace qtrain::cpu {

// Row-major C[M,N] = alpha * op(A) @ op(B) + beta * C (cblas_sgemm).
void openblas_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* a, int lda,
                    const float* b, int ldb, float beta, float* c, int ldc);

// The kernel family OpenBLAS runs with (e.g. "SkylakeX"); loads it if needed.
std::string openblas_core_name();

}  // namespace qtrain::cpu
