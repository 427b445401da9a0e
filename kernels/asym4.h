// Asymmetric 4-bit weights in 2-D tiles (QA-BLoRA's base, models/asym4_weight.h):
// W [out, in] is cut into tiles of tile_out rows x tile_in columns; each tile has
// a scale a and a zero (offset) b in F32, and w = a * q + b with q in 0..15
// (min-max: b = the tile's minimum, a = (max - min) / 15). Codes are packed two
// per byte along a row, the even column in the low nibble: codes U8 [out, in / 2].
// scale, zero: F32 [out / tile_out, in / tile_in].
#pragma once
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

struct Asym4Tiles {
  int64_t out = 0, in = 0, tile_out = 8, tile_in = 4;
};

// out [rows, in] = rows [row0, row0 + rows) of W, dequantized. CPU: out F32;
// CUDA: out F32 or BF16, codes / scale / zero on the GPU.
QT_OP(void, asym4_dequantize, (Tensor out, Tensor codes, Tensor scale, Tensor zero, const Asym4Tiles& t, int64_t row0))

}  // namespace qtrain
