// The one view of a 4-bit blockwise weight (bitsandbytes' NF4/FP4 layout,
// nf4.h) that the host reference and the CUDA kernels both decode: pointers
// to the codes and the absmax state wherever they live (quant::Packed4's
// vectors on the host, Quant4Tensor's tensors on the host or the GPU), the
// block size, the shape and the 16-entry code table. It owns nothing; it is
// passed by value into kernels. Decoding is written once, here (QT_HD).
#pragma once
#include <cstdint>

#include "kernels/quant/decode.h"

namespace qtrain::quant {

struct Nf4View {
  const uint8_t* packed = nullptr;   // two codes per byte, the first element in the high nibble
  const float* absmax = nullptr;     // F32 per block (dq == false)
  const uint8_t* qabsmax = nullptr;  // 8-bit per block, decoded with the dynamic map (dq == true)
  const float* absmax2 = nullptr;    // F32 per 256 blocks (dq == true)
  float offset = 0.f;                // mean absmax (dq == true)
  int64_t blocksize = 64;
  int64_t rows = 0, cols = 0;        // the weight [rows, cols], flattened row-major
  bool dq = false;                   // double-quantized absmax
  float code[16] = {};               // the value of each 4-bit index (code4_values)

  QT_HD int64_t numel() const { return rows * cols; }
  QT_HD int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
  // The absmax of block blk; `map` is the signed dynamic map (dynamic_map.h)
  // on the same side as the view (unused without double quantization).
  QT_HD float block_absmax(int64_t blk, const float* map) const {
    return dq ? dq_absmax(map[qabsmax[blk]], absmax2[blk / 256], offset) : absmax[blk];
  }
  // Flat element i of the dequantized weight: code[q] * absmax (one rounding).
  QT_HD float at(int64_t i, const float* map) const {
    return mul_rn(code[nibble(packed, i)], block_absmax(i / blocksize, map));
  }
};

}  // namespace qtrain::quant
