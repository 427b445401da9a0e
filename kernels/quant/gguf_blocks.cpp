#include "kernels/quant/gguf_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/dtype.h"
#include "kernels/error.h"

// The float expressions below mirror ggml-quants.c term by term (e.g. d1, SubScale::d here, is
// rounded to float before multiplying q), which is what makes them bit-exact.
// Products and sums are separate statements so no compiler fuses them to FMA.

namespace qtrain {

namespace {


inline float h2f(uint16_t h) { return f16_to_f32(h); }

// Q4_K/Q5_K: sub-block j's scale and min (6 bits each, of the 8 sub-blocks)
// times the super-block's d and dmin; each product rounded to float, as
// ggml's d1/m1 are, before it meets a quant.
struct SubScale {
  float d, m;
};
inline SubScale sub_scale_k4(int j, const uint8_t* q, float fd, float fmin) {
  uint8_t d, m;
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
  return {fd * float(d), fmin * float(m)};
}

template <class Block>
void dequantize_blocks(const void* src, float* dst, int64_t n, int64_t qk) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n / qk; ++i) {
    Block b;  // copy out: GGUF data is only guaranteed byte alignment here
    std::memcpy(&b, bytes + i * sizeof(Block), sizeof(Block));
    b.to_float(dst + i * qk);
  }
}

}  // namespace

size_t ggml_row_size(GgmlType type, int64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  QT_CHECK(n % info.block_size == 0, std::string("row of ") + std::to_string(n) + " is not whole " + info.name +
                                         " blocks");
  return size_t(n / info.block_size) * info.type_size;
}

void BlockQ4_0::to_float(float* y) const {
  const float fd = h2f(d);
  for (int j = 0; j < QK4_0 / 2; ++j) {
    const int x0 = (qs[j] & 0x0F) - 8;
    const int x1 = (qs[j] >> 4) - 8;
    y[j] = float(x0) * fd;
    y[j + QK4_0 / 2] = float(x1) * fd;
  }
}

void BlockQ4_1::to_float(float* y) const {
  const float fd = h2f(d), fm = h2f(m);
  for (int j = 0; j < QK4_1 / 2; ++j) {
    const float p0 = float(qs[j] & 0x0F) * fd;
    const float p1 = float(qs[j] >> 4) * fd;
    y[j] = p0 + fm;
    y[j + QK4_1 / 2] = p1 + fm;
  }
}

void BlockQ5_0::to_float(float* y) const {
  const float fd = h2f(d);
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < QK5_0 / 2; ++j) {
    const uint8_t xh0 = uint8_t(((h >> (j + 0)) << 4) & 0x10);
    const uint8_t xh1 = uint8_t((h >> (j + 12)) & 0x10);
    const int x0 = ((qs[j] & 0x0F) | xh0) - 16;
    const int x1 = ((qs[j] >> 4) | xh1) - 16;
    y[j] = float(x0) * fd;
    y[j + QK5_0 / 2] = float(x1) * fd;
  }
}

void BlockQ5_1::to_float(float* y) const {
  const float fd = h2f(d), fm = h2f(m);
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < QK5_1 / 2; ++j) {
    const uint8_t xh0 = uint8_t(((h >> (j + 0)) << 4) & 0x10);
    const uint8_t xh1 = uint8_t((h >> (j + 12)) & 0x10);
    const float p0 = float((qs[j] & 0x0F) | xh0) * fd;
    const float p1 = float((qs[j] >> 4) | xh1) * fd;
    y[j] = p0 + fm;
    y[j + QK5_1 / 2] = p1 + fm;
  }
}

void BlockQ8_0::to_float(float* y) const {
  const float fd = h2f(d);
  for (int j = 0; j < QK8_0; ++j) y[j] = float(qs[j]) * fd;
}

void BlockQ2_K::to_float(float* y) const {
  const float fd = h2f(d), fmin = h2f(dmin);
  const uint8_t* q = qs;
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[is++];
        const float dl = fd * float(sc & 0xF);
        const float ml = fmin * float(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          const float p = dl * float(int8_t((q[l + 16 * half] >> shift) & 3));
          *y++ = p - ml;
        }
      }
      shift += 2;
    }
    q += 32;
  }
}

void BlockQ3_K::to_float(float* y) const {
  // Unpack the 16 6-bit scales exactly as ggml does (aux words + masks).
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, scales, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  int8_t sc[16];
  std::memcpy(sc, aux, 16);

  const float d_all = h2f(d);
  const uint8_t* q = qs;
  uint8_t m = 1;
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d_all * float(sc[is++] - 32);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int v = int8_t((q[l] >> shift) & 3) - ((hmask[l] & m) ? 0 : 4);
          *y++ = dl * float(v);
        }
      }
      shift += 2;
      m = uint8_t(m << 1);
    }
    q += 32;
  }
}

void BlockQ4_K::to_float(float* y) const {
  const float fd = h2f(d), fmin = h2f(dmin);
  const uint8_t* q = qs;
  int is = 0;
  for (int j = 0; j < QK_K; j += 64) {
    const SubScale s1 = sub_scale_k4(is, scales, fd, fmin), s2 = sub_scale_k4(is + 1, scales, fd, fmin);
    for (int l = 0; l < 32; ++l) {
      const float p = s1.d * float(q[l] & 0xF);
      *y++ = p - s1.m;
    }
    for (int l = 0; l < 32; ++l) {
      const float p = s2.d * float(q[l] >> 4);
      *y++ = p - s2.m;
    }
    q += 32;
    is += 2;
  }
}

void BlockQ5_K::to_float(float* y) const {
  const float fd = h2f(d), fmin = h2f(dmin);
  const uint8_t* ql = qs;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < QK_K; j += 64) {
    const SubScale s1 = sub_scale_k4(is, scales, fd, fmin), s2 = sub_scale_k4(is + 1, scales, fd, fmin);
    for (int l = 0; l < 32; ++l) {
      const float p = s1.d * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0));
      *y++ = p - s1.m;
    }
    for (int l = 0; l < 32; ++l) {
      const float p = s2.d * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0));
      *y++ = p - s2.m;
    }
    ql += 32;
    is += 2;
    u1 = uint8_t(u1 << 2);
    u2 = uint8_t(u2 << 2);
  }
}

void BlockQ6_K::to_float(float* y) const {
  const float fd = h2f(d);
  const uint8_t* pl = ql;
  const uint8_t* ph = qh;
  const int8_t* sc = scales;
  for (int n = 0; n < QK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int8_t((pl[l + 0] & 0xF) | (((ph[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int8_t((pl[l + 32] & 0xF) | (((ph[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int8_t((pl[l + 0] >> 4) | (((ph[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int8_t((pl[l + 32] >> 4) | (((ph[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = fd * float(sc[is + 0]) * float(q1);
      y[l + 32] = fd * float(sc[is + 2]) * float(q2);
      y[l + 64] = fd * float(sc[is + 4]) * float(q3);
      y[l + 96] = fd * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    pl += 64;
    ph += 32;
    sc += 8;
  }
}

// ggml's quantize_row_q8_0_ref.
void BlockQ8_0::from_float(const float* x) {
  float amax = 0.f;
  for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float fd = amax / 127.f;
  const float id = fd != 0.f ? 1.f / fd : 0.f;
  d = f32_to_f16(fd);
  for (int j = 0; j < QK8_0; ++j) qs[j] = int8_t(std::roundf(x[j] * id));
}

// ggml's quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8.
void BlockQ4_0::from_float(const float* x) {
  float amax = 0.f, max = 0.f;
  for (int j = 0; j < QK4_0; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  const float fd = max / -8.f;
  const float id = fd != 0.f ? 1.f / fd : 0.f;
  d = f32_to_f16(fd);
  for (int j = 0; j < QK4_0 / 2; ++j) {
    const uint8_t q0 = uint8_t(std::min<int8_t>(15, int8_t(x[j] * id + 8.5f)));
    const uint8_t q1 = uint8_t(std::min<int8_t>(15, int8_t(x[j + QK4_0 / 2] * id + 8.5f)));
    qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

namespace {

// The row codecs the table points at.
template <class Block, int QK>
void blocks_to_float(const void* src, float* dst, int64_t n) {
  dequantize_blocks<Block>(src, dst, n, QK);
}

template <class Block, int QK>
void blocks_from_float(const float* src, void* dst, int64_t n) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / QK; ++i) {
    Block b;
    b.from_float(src + i * QK);
    std::memcpy(bytes + i * sizeof(Block), &b, sizeof(Block));
  }
}

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
void f32_from_float(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }

template <float (*Decode)(uint16_t)>
void half_to_float(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, b + 2 * i, 2);
    dst[i] = Decode(h);
  }
}

template <uint16_t (*Encode)(float)>
void half_from_float(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = Encode(src[i]);
    std::memcpy(b + 2 * i, &h, 2);
  }
}

// A table entry; dequantizable follows from to_float.
constexpr GgmlTypeInfo entry(const char* name, int64_t block_size, size_t type_size, GgmlRowToFloat to = nullptr,
                             GgmlRowFromFloat from = nullptr, bool on_gpu = false, int file_type = -1) {
  return {name, block_size, type_size, to != nullptr, to, from, on_gpu, file_type};
}

// Indexed by the on-disk id. file_type: llama_ftype ALL_F32 0, MOSTLY_F16 1,
// MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_BF16 32.
const GgmlTypeInfo kTypes[] = {
    /* 0 */ entry("F32", 1, 4, f32_to_float, f32_from_float, false, 0),
    /* 1 */ entry("F16", 1, 2, half_to_float<f16_to_f32>, half_from_float<f32_to_f16>, true, 1),
    /* 2 */ entry("Q4_0", QK4_0, sizeof(BlockQ4_0), blocks_to_float<BlockQ4_0, QK4_0>,
                  blocks_from_float<BlockQ4_0, QK4_0>, true, 2),
    /* 3 */ entry("Q4_1", QK4_1, sizeof(BlockQ4_1), blocks_to_float<BlockQ4_1, QK4_1>, nullptr, true),
    /* 4 */ entry(nullptr, 0, 0),  // Q4_2, removed from ggml
    /* 5 */ entry(nullptr, 0, 0),  // Q4_3, removed from ggml
    /* 6 */ entry("Q5_0", QK5_0, sizeof(BlockQ5_0), blocks_to_float<BlockQ5_0, QK5_0>),
    /* 7 */ entry("Q5_1", QK5_1, sizeof(BlockQ5_1), blocks_to_float<BlockQ5_1, QK5_1>),
    /* 8 */ entry("Q8_0", QK8_0, sizeof(BlockQ8_0), blocks_to_float<BlockQ8_0, QK8_0>,
                  blocks_from_float<BlockQ8_0, QK8_0>, true, 7),
    /* 9 */ entry("Q8_1", 32, 36),
    /* 10 */ entry("Q2_K", QK_K, sizeof(BlockQ2_K), blocks_to_float<BlockQ2_K, QK_K>),
    /* 11 */ entry("Q3_K", QK_K, sizeof(BlockQ3_K), blocks_to_float<BlockQ3_K, QK_K>),
    /* 12 */ entry("Q4_K", QK_K, sizeof(BlockQ4_K), blocks_to_float<BlockQ4_K, QK_K>),
    /* 13 */ entry("Q5_K", QK_K, sizeof(BlockQ5_K), blocks_to_float<BlockQ5_K, QK_K>),
    /* 14 */ entry("Q6_K", QK_K, sizeof(BlockQ6_K), blocks_to_float<BlockQ6_K, QK_K>),
    /* 15 */ entry("Q8_K", QK_K, 292),
    /* 16..23: IQ2_XXS .. IQ4_NL (importance-matrix codebooks) */
    entry("IQ2_XXS", QK_K, 66), entry("IQ2_XS", QK_K, 74), entry("IQ3_XXS", QK_K, 98), entry("IQ1_S", QK_K, 50),
    entry("IQ4_NL", 32, 18), entry("IQ3_S", QK_K, 110), entry("IQ2_S", QK_K, 82), entry("IQ4_XS", QK_K, 136),
    /* 24 */ entry("I8", 1, 1),
    /* 25 */ entry("I16", 1, 2),
    /* 26 */ entry("I32", 1, 4),
    /* 27 */ entry("I64", 1, 8),
    /* 28 */ entry("F64", 1, 8),
    /* 29 */ entry("IQ1_M", QK_K, 56),
    /* 30 */ entry("BF16", 1, 2, half_to_float<bf16_to_f32>, half_from_float<f32_to_bf16>, false, 32),
};
constexpr uint32_t kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  if (type >= kNumTypes || !kTypes[type].name) return nullptr;
  return &kTypes[type];
}

const GgmlTypeInfo& ggml_type_info(GgmlType type) {
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  QT_CHECK(info, "unknown GgmlType " + std::to_string(uint32_t(type)));
  return *info;
}

std::string ggml_type_names(bool (*keep)(const GgmlTypeInfo&), const char* sep) {
  std::string r;
  for (const GgmlTypeInfo& t : kTypes)
    if (t.name && keep(t)) r += (r.empty() ? "" : sep) + std::string(t.name);
  return r;
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  QT_CHECK(info.to_float, std::string("dequantize_row: no CPU dequantizer for ") + info.name);
  info.to_float(src, dst, n);
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  QT_CHECK(info.from_float, std::string("quantize_row: no encoder for ") + info.name);
  info.from_float(src, dst, n);
}

}  // namespace qtrain
