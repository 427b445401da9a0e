// GGUF blocks on the GPU: dequantized to a dense BF16/F32 matrix (training
// shapes, then cuBLASLt), or multiplied straight from the blocks by a few rows
// of x (decode). Dequantize: one thread per 32-weight block (Q4_0, Q4_1, Q8_0)
// or per weight (F16); the F32 value of each weight is computed with the CPU
// reference's operations (kernels/quant/gguf_blocks.cpp: one rounded multiply,
// then one rounded add for Q4_1), so it is the same bits.
#include <cuda_fp16.h>

#include "kernels/cuda/common.cuh"
#include "kernels/gguf_dequant.h"

namespace qtrain::cuda {
namespace {

__device__ __forceinline__ float h2f(const uint8_t* p) {
  return __half2float(__ushort_as_half(uint16_t(p[0] | (p[1] << 8))));
}

template <GgmlType kType>
__global__ void gguf_blocks_kernel(FloatPtr out, const uint8_t* src, int64_t nblocks, size_t block_bytes) {
  QT_GRID_STRIDE(b, nblocks) {
    const uint8_t* blk = src + size_t(b) * block_bytes;
    const int64_t o = b * 32;
    if constexpr (kType == GgmlType::Q4_0) {  // d, 16 bytes: low nibbles weights 0..15, high 16..31
      const float d = h2f(blk);
      for (int j = 0; j < 16; ++j) {
        const uint8_t q = blk[2 + j];
        out.st(o + j, __fmul_rn(float(int(q & 0x0F) - 8), d));
        out.st(o + j + 16, __fmul_rn(float(int(q >> 4) - 8), d));
      }
    } else if constexpr (kType == GgmlType::Q4_1) {  // d, m, 16 bytes
      const float d = h2f(blk), m = h2f(blk + 2);
      for (int j = 0; j < 16; ++j) {
        const uint8_t q = blk[4 + j];
        out.st(o + j, __fadd_rn(__fmul_rn(float(q & 0x0F), d), m));
        out.st(o + j + 16, __fadd_rn(__fmul_rn(float(q >> 4), d), m));
      }
    } else {  // Q8_0: d, 32 signed bytes
      const float d = h2f(blk);
      for (int j = 0; j < 32; ++j) out.st(o + j, __fmul_rn(float(int8_t(blk[2 + j])), d));
    }
  }
}

__global__ void gguf_f16_kernel(FloatPtr out, const uint8_t* src, int64_t n) {
  QT_GRID_STRIDE(i, n)
    out.st(i, h2f(src + 2 * i));
}

// ---------------------------------------------------------------------------
// Decode product y[M, rows] = x[M, cols] W^T from the blocks, M <= 8.
//
// Why it is shaped so. At M = 1 the product reads every block once and each
// weight is used M times, so it is bound by the weight stream (0.56 B per
// weight for Q4_0, 0.63 for Q4_1, 1.06 for Q8_0): BF16 reads 2 B per weight,
// which is what dequantize + cuBLASLt costs twice over (write, then read). A
// warp owns one row of W and its lanes take consecutive blocks, so a warp's
// loads cover one contiguous run of 32 blocks (576-1088 bytes) and every byte
// is fetched once (a block's words are read by one lane; the rest of a line is
// an L1 hit for its neighbours). Blocks are 18/20/34 bytes, so only 2-byte
// (Q4_0, Q8_0) or 4-byte (Q4_1) alignment holds: the loads are that wide.
// The weight decode avoids int->float conversions (a quarter-rate unit): a
// 4-bit or biased 8-bit code c is the float 2^23 + c with its low bits set
// (0x4B000000 | c); one subtraction of 2^23 + the format's offset (8 for
// Q4_0, 128 for Q8_0's sign-flipped byte) leaves q exactly. Each block's sum over its 32 weights,
// sum(q x), is scaled once by d (Q4_1: + m sum(x)); the reference rounds
// each weight's q d first, so the two agree within float rounding.
// x (M rows of bf16, a few KB that every warp reads) comes through L1.
constexpr int kGgufGemvWarps = 8;

// q = c - kBias for a code c < 2^8, exact (2^23 + kBias is a float).
template <int kBias>
__device__ __forceinline__ float code_float(uint32_t c) {
  return __uint_as_float(0x4B000000u | c) - (8388608.f + float(kBias));
}
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

// The 32 x values of block b for row m, as 16 words of bf16 pairs (x[2i], x[2i + 1]).
__device__ __forceinline__ void load_x32(uint32_t (&xw)[16], const bf16* x, int64_t off) {
  const int4* p = reinterpret_cast<const int4*>(x + off);
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int4 v = __ldg(p + q);
    xw[4 * q] = uint32_t(v.x), xw[4 * q + 1] = uint32_t(v.y), xw[4 * q + 2] = uint32_t(v.z), xw[4 * q + 3] = uint32_t(v.w);
  }
}

// x value j (0..31) of the block from its bf16 pair words.
__device__ __forceinline__ float xval(const uint32_t (&xw)[16], int j) {
  return (j & 1) ? bf16_hi(xw[j >> 1]) : bf16_lo(xw[j >> 1]);
}

template <GgmlType kType, int MT>
__global__ void __launch_bounds__(kGgufGemvWarps * 32)
    gguf_gemv_kernel(FloatPtr y, const bf16* __restrict__ x, int M, const uint8_t* __restrict__ w, int64_t rows,
                     int64_t cols, int64_t row_bytes) {
  constexpr int kBlockBytes = kType == GgmlType::Q4_0 ? 18 : kType == GgmlType::Q4_1 ? 20 : 34;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kGgufGemvWarps + warp;
  if (row >= rows) return;
  const uint8_t* wr = w + row * row_bytes;
  const int64_t nblk = cols / 32;
  float acc[MT] = {};
  for (int64_t b = lane; b < nblk; b += 32) {
    const uint8_t* blk = wr + b * kBlockBytes;
    // q[j] as a float for the block's 32 weights (j = 0..31 in ggml's order), and its scales.
    float d, mn = 0.f;
    uint32_t qw[8];  // Q4: 4 words of 8 nibbles (bytes 0..15); Q8_0: 8 words of 4 signed bytes
    if constexpr (kType == GgmlType::Q4_1) {
      const uint32_t* p = reinterpret_cast<const uint32_t*>(blk);
      const uint32_t dm = __ldg(p);
      d = __half2float(__ushort_as_half(uint16_t(dm & 0xFFFF)));
      mn = __half2float(__ushort_as_half(uint16_t(dm >> 16)));
#pragma unroll
      for (int k = 0; k < 4; ++k) qw[k] = __ldg(p + 1 + k);
    } else {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(blk);
      d = __half2float(__ushort_as_half(__ldg(p)));
      constexpr int kWords = kType == GgmlType::Q4_0 ? 4 : 8;
#pragma unroll
      for (int k = 0; k < kWords; ++k) qw[k] = uint32_t(__ldg(p + 1 + 2 * k)) | (uint32_t(__ldg(p + 2 + 2 * k)) << 16);
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m >= M) break;
      uint32_t xw[16];
      load_x32(xw, x, int64_t(m) * cols + b * 32);
      float s = 0.f, sx = 0.f;
      if constexpr (kType == GgmlType::Q8_0) {
#pragma unroll
        for (int j = 0; j < 32; ++j)  // the signed byte + 128 (its top bit flipped) is the code
          s += code_float<128>(((qw[j >> 2] >> (8 * (j & 3))) & 0xFFu) ^ 0x80u) * xval(xw, j);
      } else {
#pragma unroll
        for (int j = 0; j < 16; ++j) {  // byte j: weight j in its low nibble, weight j + 16 in its high one
          const uint32_t byte = qw[j >> 2] >> (8 * (j & 3));
          constexpr int kBias = kType == GgmlType::Q4_0 ? 8 : 0;
          const float lo = code_float<kBias>(byte & 0xFu), hi = code_float<kBias>((byte >> 4) & 0xFu);
          const float x0 = xval(xw, j), x1 = xval(xw, j + 16);
          s += lo * x0 + hi * x1;
          if constexpr (kType == GgmlType::Q4_1) sx += x0 + x1;
        }
      }
      acc[m] += d * s + mn * sx;
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= M) break;
    const float v = warp_sum(acc[m]);
    if (lane == 0) y.st(int64_t(m) * rows + row, v);
  }
}

template <GgmlType kType>
void launch_gguf_gemv(FloatPtr y, const bf16* x, int M, const uint8_t* w, int64_t rows, int64_t cols) {
  const int64_t row_bytes = int64_t(ggml_row_size(kType, cols));
  const unsigned grid = unsigned((rows + kGgufGemvWarps - 1) / kGgufGemvWarps);
  constexpr unsigned threads = kGgufGemvWarps * 32;
  // Templated on the row count bucket, so the accumulators stay in registers.
  if (M == 1)
    gguf_gemv_kernel<kType, 1><<<grid, threads, 0, stream()>>>(y, x, M, w, rows, cols, row_bytes);
  else if (M <= 4)
    gguf_gemv_kernel<kType, 4><<<grid, threads, 0, stream()>>>(y, x, M, w, rows, cols, row_bytes);
  else
    gguf_gemv_kernel<kType, 8><<<grid, threads, 0, stream()>>>(y, x, M, w, rows, cols, row_bytes);
}

}  // namespace

// Shapes were checked by the public op (kernels/cpu/gguf_dequant.cpp); here the kernel's own limits.
void matmul_gguf(Tensor y, Tensor x, Tensor blocks, GgmlType type) {
  QT_CHECK(gemv_gguf_supported(x, type), std::string("matmul_gguf: the GPU product takes BF16 x of at most ") +
                                             std::to_string(kGemvGgufMaxRows) + " rows and Q4_0/Q4_1/Q8_0 blocks, got " +
                                             dtype_name(x.dtype()) + " x " + shape_str(x.shape()) + ", " +
                                             ggml_type_name(type));
  const int64_t cols = x.size(-1), M = x.numel() / cols, rows = y.numel() / std::max<int64_t>(M, 1);
  QT_CHECK(reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 && cols % 8 == 0,
           "matmul_gguf: x rows must start 16-byte aligned");  // cols is a multiple of 32 (whole blocks)
  if (!y.numel()) return;
  const FloatPtr o = fptr(y, "matmul_gguf y");
  const auto* xb = static_cast<const bf16*>(x.raw());
  const auto* w = static_cast<const uint8_t*>(blocks.raw());
  switch (type) {
    case GgmlType::Q4_0: launch_gguf_gemv<GgmlType::Q4_0>(o, xb, int(M), w, rows, cols); break;
    case GgmlType::Q4_1: launch_gguf_gemv<GgmlType::Q4_1>(o, xb, int(M), w, rows, cols); break;
    default: launch_gguf_gemv<GgmlType::Q8_0>(o, xb, int(M), w, rows, cols); break;
  }
  CUDA_CHECK_LAUNCH("matmul_gguf");
}

void dequantize_gguf(Tensor out, Tensor blocks, GgmlType type) {
  const int64_t n = out.numel();
  if (!n) return;
  const FloatPtr o = fptr(out, "dequantize_gguf out");
  const auto* src = static_cast<const uint8_t*>(blocks.raw());
  const GgmlTypeInfo& info = ggml_type_info(type);
  const int64_t nblocks = n / info.block_size;
  // The cases are the types whose table entry (kernels/quant/gguf_blocks.cpp) says on_gpu.
  switch (type) {
    case GgmlType::Q4_0:
      gguf_blocks_kernel<GgmlType::Q4_0><<<grid_for(nblocks, 256), 256, 0, stream()>>>(o, src, nblocks, info.type_size);
      break;
    case GgmlType::Q4_1:
      gguf_blocks_kernel<GgmlType::Q4_1><<<grid_for(nblocks, 256), 256, 0, stream()>>>(o, src, nblocks, info.type_size);
      break;
    case GgmlType::Q8_0:
      gguf_blocks_kernel<GgmlType::Q8_0><<<grid_for(nblocks, 256), 256, 0, stream()>>>(o, src, nblocks, info.type_size);
      break;
    case GgmlType::F16:
      gguf_f16_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(o, src, n);
      break;
    default:
      QT_CHECK(!info.on_gpu, std::string("dequantize_gguf: no CUDA kernel for ") + info.name);
      throw Error(std::string("a GGUF base kept in ") + info.name + " blocks runs on the CPU only (the GPU takes " +
                  ggml_type_names([](const GgmlTypeInfo& i) { return i.on_gpu; }) +
                  "); use --method lora to dequantize it on load");
  }
  CUDA_CHECK_LAUNCH("dequantize_gguf");
}

}  // namespace qtrain::cuda
