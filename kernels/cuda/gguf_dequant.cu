// GGUF blocks to a dense BF16/F32 matrix on the GPU: one thread per 32-weight
// block (Q4_0, Q4_1, Q8_0) or per weight (F16). The F32 value of each weight
// is computed with the CPU reference's operations (kernels/quant/gguf_blocks.cpp:
// one rounded multiply, then one rounded add for Q4_1), so it is the same bits.
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
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < nblocks; b += int64_t(gridDim.x) * blockDim.x) {
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
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out.st(i, h2f(src + 2 * i));
}

}  // namespace

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
