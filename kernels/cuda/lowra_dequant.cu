// LowRA codes to a dense BF16/F32 matrix on the GPU: one thread per 8
// consecutive weights of a row. Row widths differ (1, 2 or 4 bits), but 8
// weights are always whole bytes (1, 2 or 4 of them, aligned to their size
// since every row starts on an 8-byte boundary), so each thread does one
// aligned load, then 8 table lookups times the block absmax. Each value is
// the CPU reference's one F32 product (kernels/quant/lowra.cpp), so the F32
// value is the same bits before the store rounds it to out's dtype.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant/lowra.h"

namespace qtrain::cuda {
namespace {

__global__ void lowra_dequant_kernel(FloatPtr out, const uint8_t* codes, const int32_t* row_offset,
                                     const uint8_t* bits, const float* lut, const float* absmax, int64_t rows,
                                     int64_t cols) {
  const int64_t per_row = cols / 8, n = rows * per_row;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = o / per_row, c0 = (o - r * per_row) * 8;
    const int b = bits[r];
    const uint8_t* p = codes + row_offset[r] + (c0 / 8) * b;
    const uint32_t v = b == 4 ? *reinterpret_cast<const uint32_t*>(p)
                              : (b == 2 ? *reinterpret_cast<const uint16_t*>(p) : uint32_t(*p));
    const uint32_t mask = (1u << b) - 1;
    const float* l = lut + r * quant::kLowraLut;
    const float a = absmax[r * (cols / quant::kLowraGroup) + c0 / quant::kLowraGroup];
#pragma unroll
    for (int k = 0; k < 8; ++k) out.st(r * cols + c0 + k, __fmul_rn(l[(v >> (k * b)) & mask], a));
  }
}

}  // namespace

void dequantize_lowra(Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  QT_CHECK(codes.is_cuda() && row_offset.is_cuda() && bits.is_cuda() && lut.is_cuda() && absmax.is_cuda(),
           "dequantize_lowra: codes/row_offset/bits/lut/absmax are not on the GPU");
  const int64_t rows = out.size(0), cols = out.size(1), n = rows * cols / 8;
  if (!n) return;
  lowra_dequant_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(
      fptr(out, "dequantize_lowra out"), static_cast<const uint8_t*>(codes.raw()),
      static_cast<const int32_t*>(row_offset.raw()), static_cast<const uint8_t*>(bits.raw()),
      static_cast<const float*>(lut.raw()), static_cast<const float*>(absmax.raw()), rows, cols);
  CUDA_CHECK_LAUNCH("dequantize_lowra");
}

}  // namespace qtrain::cuda
