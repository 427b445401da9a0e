// LowRA codes to a dense BF16/F32 matrix on the GPU: one thread per 8
// consecutive weights of a row. Row widths differ (1, 2 or 4 bits), but 8
// weights are always whole bytes (1, 2 or 4 of them, aligned to their size
// since every row starts on an 8-byte boundary), so each thread does one
// aligned load, then 8 table lookups times the block absmax. Each value is
// the CPU reference's one F32 product (kernels/quant/lowra.cpp), so the F32
// value is the same bits before the store rounds it to out's dtype. Below: the
// decode product straight from the packed layout (lowra_matvec).
#include "kernels/cuda/common.cuh"
#include "kernels/lowra_dequant.h"
#include "kernels/quant/lowra.h"

namespace qtrain::cuda {
namespace {

__global__ void lowra_dequant_kernel(FloatPtr out, const uint8_t* codes, const int32_t* row_offset,
                                     const uint8_t* bits, const float* lut, const float* absmax, int64_t rows,
                                     int64_t cols) {
  const int64_t per_row = cols / 8, n = rows * per_row;
  QT_GRID_STRIDE(o, n) {
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

// The decode product: a warp per output channel. Each lane takes 8 weights at
// a time (one aligned load of 1, 2 or 4 code bytes, one absmax, the row's
// levels from shared memory) and the matching 8 BF16 inputs of each of the M
// rows (one 16-byte load each); F32 sums, reduced across the warp. W is read
// once, packed: at 2 bits that is 1/8 of the BF16 matrix a dequantize +
// GEMM pass would write and read back.
constexpr int kWarpsPerBlock = 8;

template <int M>
__global__ void lowra_matvec_kernel(FloatPtr y, const bf16* __restrict__ x, const uint8_t* __restrict__ codes,
                                    const int32_t* __restrict__ row_offset, const uint8_t* __restrict__ bits,
                                    const float* __restrict__ lut, const float* __restrict__ absmax, int64_t rows,
                                    int64_t cols) {
  __shared__ float levels[kWarpsPerBlock][quant::kLowraLut];
  const int wib = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + wib;
  if (r >= rows) return;  // whole warps leave together
  if (lane < quant::kLowraLut) levels[wib][lane] = lut[r * quant::kLowraLut + lane];
  __syncwarp();
  const int b = bits[r];
  const uint32_t mask = (1u << b) - 1;
  const uint8_t* rc = codes + row_offset[r];
  const float* am = absmax + r * (cols / quant::kLowraGroup);
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; ++i) acc[i] = 0.f;
  for (int64_t o = lane; o < cols / 8; o += 32) {
    const uint8_t* p = rc + o * b;
    const uint32_t v = b == 4 ? *reinterpret_cast<const uint32_t*>(p)
                              : (b == 2 ? *reinterpret_cast<const uint16_t*>(p) : uint32_t(*p));
    const float a = am[o / 8];
    float w[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) w[k] = levels[wib][(v >> (k * b)) & mask] * a;
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const uint4 raw = *reinterpret_cast<const uint4*>(x + i * cols + o * 8);
      const bf16* xv = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[i] = fmaf(w[k], __bfloat162float(xv[k]), acc[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float s = acc[i];
#pragma unroll
    for (int d = 16; d > 0; d /= 2) s += __shfl_xor_sync(0xffffffffu, s, d);
    if (lane == 0) y.st(i * rows + r, s);
  }
}

template <int M>
void launch_matvec(FloatPtr y, const bf16* x, const uint8_t* c, const int32_t* o, const uint8_t* b, const float* l,
                   const float* a, int64_t rows, int64_t cols) {
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  lowra_matvec_kernel<M><<<unsigned(blocks), kWarpsPerBlock * 32, 0, stream()>>>(y, x, c, o, b, l, a, rows, cols);
}

}  // namespace

void lowra_matvec(Tensor y, Tensor x, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  // Layout and devices were checked by the public op (kernels/cpu/lowra_dequant.cpp).
  check_cuda_dtype(x, DType::BF16, "lowra_matvec x");
  QT_CHECK(reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0, "lowra_matvec: x is not 16-byte aligned");
  const int64_t rows = bits.numel(), cols = x.size(-1), m = x.numel() / cols;
  const FloatPtr py = fptr(y, "lowra_matvec y");
  const auto* px = static_cast<const bf16*>(x.raw());
  const auto* c = static_cast<const uint8_t*>(codes.raw());
  const auto* o = static_cast<const int32_t*>(row_offset.raw());
  const auto* b = static_cast<const uint8_t*>(bits.raw());
  const auto* l = static_cast<const float*>(lut.raw());
  const auto* a = static_cast<const float*>(absmax.raw());
  switch (m) {
    case 1: launch_matvec<1>(py, px, c, o, b, l, a, rows, cols); break;
    case 2: launch_matvec<2>(py, px, c, o, b, l, a, rows, cols); break;
    case 3: launch_matvec<3>(py, px, c, o, b, l, a, rows, cols); break;
    case 4: launch_matvec<4>(py, px, c, o, b, l, a, rows, cols); break;
    case 5: launch_matvec<5>(py, px, c, o, b, l, a, rows, cols); break;
    case 6: launch_matvec<6>(py, px, c, o, b, l, a, rows, cols); break;
    case 7: launch_matvec<7>(py, px, c, o, b, l, a, rows, cols); break;
    default: launch_matvec<8>(py, px, c, o, b, l, a, rows, cols); break;
  }
  CUDA_CHECK_LAUNCH("lowra_matvec");
}

void dequantize_lowra(Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax) {
  const int64_t rows = out.size(0), cols = out.size(1), n = rows * cols / 8;
  if (!n) return;
  lowra_dequant_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(
      fptr(out, "dequantize_lowra out"), static_cast<const uint8_t*>(codes.raw()),
      static_cast<const int32_t*>(row_offset.raw()), static_cast<const uint8_t*>(bits.raw()),
      static_cast<const float*>(lut.raw()), static_cast<const float*>(absmax.raw()), rows, cols);
  CUDA_CHECK_LAUNCH("dequantize_lowra");
}

}  // namespace qtrain::cuda
