// ggml tensor types and their block layouts, with CPU dequantize references
// that are bit-exact with ggml's dequantize_row_* (same float operations in the
// same order). A block is a fixed-size struct holding `block_size` weights;
// rows are sequences of whole blocks. Layouts follow ggml-common.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qtrain {

// Values are the on-disk GGUF ids (ggml_type); do not renumber.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};

// n weights (whole blocks) of a row from their blocks (unaligned bytes are
// fine) and back.
using GgmlRowToFloat = void (*)(const void* src, float* dst, int64_t n);
using GgmlRowFromFloat = void (*)(const float* src, void* dst, int64_t n);

// One entry per type, in gguf_blocks.cpp's table: the single source of what
// qtrain knows of it. dequantize_row, GgufWriter::add_tensor, the GGUF export,
// the loader's and the GPU path's lists of types all read it.
struct GgmlTypeInfo {
  const char* name;      // "Q4_K", as ggml prints it
  int64_t block_size;    // weights per block (1 for plain types)
  size_t type_size;      // bytes per block
  bool dequantizable;    // to_float != nullptr: qtrain reads it
  GgmlRowToFloat to_float;      // ggml's dequantize_row_*, bit-exact
  GgmlRowFromFloat from_float;  // ggml's quantize_row_*_ref; nullptr: qtrain does not write it
  bool on_gpu;                  // dequantize_gguf's CUDA kernel takes it (kernels/cuda/gguf_dequant.cu)
  int file_type;                // llama_ftype of a model written in this type (general.file_type), -1 none
};

// nullptr for an id qtrain does not know (the caller names file and tensor).
const GgmlTypeInfo* ggml_type_info(uint32_t type);
const GgmlTypeInfo& ggml_type_info(GgmlType type);
inline const char* ggml_type_name(GgmlType t) { return ggml_type_info(t).name; }
// The names of the known types that `keep` selects, in id order, joined by
// sep: the lists error messages give ("F32, F16, Q4_0, ...").
std::string ggml_type_names(bool (*keep)(const GgmlTypeInfo&), const char* sep = ", ");
// Bytes of a row of n weights; n must be a multiple of the block size.
size_t ggml_row_size(GgmlType type, int64_t n);

// ---- block layouts (ggml-common.h), all little-endian, packed ------------
constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

struct BlockQ4_0 {  // w = (q - 8) * d
  uint16_t d;  // f16
  uint8_t qs[QK4_0 / 2];  // low nibbles: weights 0..15, high nibbles: 16..31
  void to_float(float* y) const;
  void from_float(const float* x);  // ggml's quantize_row_q4_0_ref
};
struct BlockQ4_1 {  // w = q * d + m
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
  void to_float(float* y) const;
};
struct BlockQ5_0 {  // w = (q - 16) * d, bit 4 of weight j in bit j of qh
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
  void to_float(float* y) const;
};
struct BlockQ5_1 {  // w = q * d + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
  void to_float(float* y) const;
};
struct BlockQ8_0 {  // w = q * d
  uint16_t d;
  int8_t qs[QK8_0];
  void to_float(float* y) const;
  void from_float(const float* x);  // ggml's quantize_row_q8_0_ref
};
struct BlockQ2_K {  // 16 sub-blocks of 16: w = d*(sc&15)*q - dmin*(sc>>4)
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
  void to_float(float* y) const;
};
struct BlockQ3_K {  // 16 sub-blocks of 16, 6-bit signed scales, 3-bit q (high bit in hmask)
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
  void to_float(float* y) const;
};
struct BlockQ4_K {  // 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
  void to_float(float* y) const;
};
struct BlockQ5_K {  // as Q4_K plus a fifth bit per weight in qh
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
  void to_float(float* y) const;
};
struct BlockQ6_K {  // 16 sub-blocks of 16: w = d * scale * (q - 32), q 6-bit
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
  void to_float(float* y) const;
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Dequantizes n weights (a multiple of the block size) from `src` (unaligned
// bytes are fine) into dst: the table's to_float. This is the row-by-row entry
// point the quantized Linear uses; types with dequantizable == false are an
// internal error.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
// Encodes n weights (a multiple of the block size) into dst: the table's
// from_float; a type without one is an internal error.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace qtrain
