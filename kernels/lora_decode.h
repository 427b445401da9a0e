// The LoRA path of a few decode rows for up to kLoraDecodeMaxShared adapters
// that read the same x (LLaMA's q/k/v, gate/up; one adapter works too):
//   ys[i] += scales[i] * (x as[i]^T) bs[i]^T,   as[i] [r_i, in], bs[i] [out_i, r_i].
// At M <= 16 rows each product is a few microseconds of launch-bound cuBLAS
// work, three kernels per adapter (split-K x A^T, its reduction, then the B
// product); the CUDA op does all of a set in two launches (x A^T for every
// rank row of every adapter, then the B products into y), with x A^T kept in
// F32 between them (cuBLAS rounds it to BF16: so this is at least as close to
// the F32 reference). CPU: the reference, two gemms per adapter in F32.
#pragma once
#include <vector>

#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

constexpr int kLoraDecodeMaxShared = 3;
// Up to 16 x rows (batch 16 decode), in kernels built for 1, 4, 8 and 16 rows.
constexpr int64_t kLoraDecodeMaxRows = 16, kLoraDecodeMaxRank = 64;

QT_OP(void, lora_decode_shared,
      (const std::vector<Tensor>& ys, Tensor x, const std::vector<Tensor>& as, const std::vector<Tensor>& bs,
       const std::vector<float>& scales))

// Whether the CUDA op takes these operands in its two launches (BF16 x and
// factors on the GPU, x rows <= kLoraDecodeMaxRows, ranks <= 64, in a multiple of 8); a
// caller falls back to each adapter's own forward otherwise.
bool lora_decode_supported(const Tensor& x, const std::vector<Tensor>& as, const std::vector<Tensor>& bs);

}  // namespace qtrain
