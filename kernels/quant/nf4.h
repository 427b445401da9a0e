// 4-bit blockwise quantization in bitsandbytes' layout (quantize_4bit), and
// its NF4 code. FP4 uses the same layout with another code (fp4.h).
//
// Layout, bit-identical to bitsandbytes 0.50 on the CPU:
//   - the weight is flattened ([out,in] row-major) and cut into blocks of
//     `blocksize` (64) elements; absmax[b] = max |w| over the block (fp32);
//   - x = clamp(w * (1/absmax), -1, 1) (reciprocal then multiply, as bnb; a
//     zero block uses 1/1e-38 so its codes are those of 0);
//   - code index = bucketize(x, midpoints of the sorted code): the nearest
//     code value, an exact tie goes to the lower value;
//   - two codes per byte, the FIRST element in the HIGH nibble.
// Double quantization (bnb compress_statistics=True): offset = mean(absmax),
// absmax - offset is 8-bit blockwise-quantized with the signed dynamic map,
// blocksize 256 (dynamic_map.h), with its own fp32 absmax per 256 block.
// Our offset is the mean summed in double: torch's vectorized float mean may
// differ from it in the last bit (tests allow 1 ulp there).
// Dequantize: w = code[q] * absmax (fp32), absmax decoded first as
// map[qabsmax] * absmax2 + offset — written once, in Nf4View (nf4_view.h),
// which the host reference and the CUDA kernels both decode.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/quant/nf4_view.h"

namespace qtrain::quant {

enum class Code4 : uint8_t { NF4, FP4 };
const char* code4_name(Code4 c);
// The 16 values a 4-bit index decodes to.
const std::array<float, 16>& code4_values(Code4 c);

// The host storage quantize_4bit fills (Quant4Tensor, kernels/quant_matmul.h,
// holds the same arrays as tensors); view() is what code decodes.
struct Packed4 {
  Code4 code = Code4::NF4;
  int64_t numel = 0;
  int64_t blocksize = 64;
  std::vector<uint8_t> packed;  // ceil(numel/2) bytes
  bool double_quant = false;
  std::vector<float> absmax;    // per block, when !double_quant
  std::vector<uint8_t> qabsmax; // per block, when double_quant
  std::vector<float> absmax2;   // per 256 blocks, when double_quant
  float offset = 0.f;           // mean of absmax, when double_quant
  int64_t blocks() const { return (numel + blocksize - 1) / blocksize; }
  size_t bytes() const {
    return packed.size() + absmax.size() * 4 + qabsmax.size() + absmax2.size() * 4 + (double_quant ? 4 : 0);
  }
  // The weight as [rows, cols] (rows * cols == numel); valid while *this lives.
  Nf4View view(int64_t rows, int64_t cols) const;
  Nf4View view() const { return view(1, numel); }
};

// The code table, the shape and the absmax state of a view (the pointers
// are the caller's).
Nf4View make_nf4_view(Code4 code, int64_t rows, int64_t cols, int64_t blocksize, bool double_quant, float offset);

Packed4 quantize_4bit(const float* w, int64_t n, Code4 code, bool double_quant, int64_t blocksize = 64);
// The fp32 per-block absmax the weight dequantizes with (decodes DQ).
std::vector<float> decoded_absmax(const Nf4View& v);
// The view with its absmax already decoded into `absmax` (decoded_absmax):
// the same values, without the per-element double-quant decode.
Nf4View with_decoded_absmax(Nf4View v, const std::vector<float>& absmax);
// Elements [begin, end) of the dequantized weight into out (end - begin floats).
void dequantize_4bit(const Nf4View& v, int64_t begin, int64_t end, float* out);

inline Packed4 quantize_nf4(const float* w, int64_t n, bool double_quant) {
  return quantize_4bit(w, n, Code4::NF4, double_quant);
}

}  // namespace qtrain::quant
