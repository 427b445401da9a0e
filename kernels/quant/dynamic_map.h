// 8-bit blockwise quantization with bitsandbytes' dynamic map: how double
// quantization stores the per-block absmax of NF4/FP4 weights.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace qtrain::quant {

const std::array<float, 256>& dynamic_map_signed();

// Per block absmax = max|a|; x = a / absmax; the index of the nearest map
// value, ties to the lower index (bnb's torch reference: argmin |x - map|).
// bnb's native CPU kernel (cquantize_blockwise_cpu_fp32) uses an approximate
// binary search (BinSearch "Direct") that, for values within ~1e-5 of a
// midpoint between two map values, may pick the other neighbour: about 0.15%
// of codes differ by one step there (measured on 20k normal values). Writes n codes to `out` and ceil(n/blocksize) absmax values.
void quantize_blockwise8(const float* a, int64_t n, int64_t blocksize, uint8_t* out, std::vector<float>& absmax);
// out[i] = map[q[i]] * absmax[i / blocksize]
void dequantize_blockwise8(const uint8_t* q, const float* absmax, int64_t n, int64_t blocksize, float* out);

}  // namespace qtrain::quant
