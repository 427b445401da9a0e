#include "kernels/quant/nf4.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "kernels/error.h"
#include "kernels/quant/decode.h"
#include "kernels/quant/dynamic_map.h"
#include "kernels/quant/fp4.h"

namespace qtrain::quant {

namespace {

// The NF4 code of QLoRA (Dettmers et al. 2023), as bnb's float32 table.
const std::array<float, 16>& nf4_code() {
  static const std::array<float, 16> kCode = {
      -1.f,          -0x1.647362p-1f, -0x1.0cd660p-1f, -0x1.946540p-2f, -0x1.23449ap-2f, -0x1.7a6a7ep-3f,
      -0x1.74f0e2p-4f, 0.f,           0x1.45f5fep-4f,  0x1.4995c6p-3f,  0x1.f809bap-3f,  0x1.5a0674p-2f,
      0x1.c34970p-2f,  0x1.200f56p-1f, 0x1.722766p-1f, 1.f};
  return kCode;
}

// Sorted code -> midpoints and the permutation back to code indices, as bnb's
// _get_4bit_quantize_bounds (a stable argsort: the same for these codes).
struct Bounds {
  std::array<float, 15> mid;
  std::array<uint8_t, 16> order;
};

Bounds make_bounds(Code4 c) {
  const auto& code = code4_values(c);
  Bounds b;
  std::iota(b.order.begin(), b.order.end(), uint8_t(0));
  std::stable_sort(b.order.begin(), b.order.end(), [&](uint8_t x, uint8_t y) { return code[x] < code[y]; });
  for (int i = 0; i < 15; ++i) b.mid[i] = (code[b.order[i]] + code[b.order[i + 1]]) / 2.f;
  return b;
}

// torch.bucketize(x, mid, right=False): the number of midpoints < x, counted
// without branches (a binary search mispredicts on random weights; this is
// ~5x faster, and loading a 70B base quantizes 7e10 of them).
inline uint8_t bucket(const Bounds& b, float x) {
  int n = 0;
  for (int i = 0; i < 15; ++i) n += b.mid[size_t(i)] < x;
  return b.order[size_t(n)];
}
constexpr int kVecRun = 16;  // weights per vectorized run of a full block (blocksizes are multiples)

}  // namespace

const char* code4_name(Code4 c) { return c == Code4::NF4 ? "nf4" : "fp4"; }

const std::array<float, 16>& code4_values(Code4 c) { return c == Code4::NF4 ? nf4_code() : fp4_code(); }

Packed4 quantize_4bit(const float* w, int64_t n, Code4 code, bool double_quant, int64_t blocksize) {
  if (n <= 0 || blocksize <= 0) throw Error("quantize_4bit: empty weight or bad blocksize");
  static const Bounds kNf4 = make_bounds(Code4::NF4), kFp4 = make_bounds(Code4::FP4);
  const Bounds& b = code == Code4::NF4 ? kNf4 : kFp4;
  Packed4 p;
  p.code = code;
  p.numel = n;
  p.blocksize = blocksize;
  p.packed.assign(size_t((n + 1) / 2), 0);
  std::vector<float> absmax(size_t(p.blocks()));
  // Blocks are independent and (blocksize even) own whole bytes: threads
  // change nothing in the result. A 70B base is ~1e9 blocks.
#pragma omp parallel for schedule(static) if (p.blocks() > 4096 && blocksize % 2 == 0)
  for (int64_t blk = 0; blk < p.blocks(); ++blk) {
    int64_t s = blk * blocksize, e = std::min(n, s + blocksize);
    float am = 0.f;
    for (int64_t i = s; i < e; ++i) am = std::max(am, std::fabs(w[i]));
    // bnb: full blocks multiply by the reciprocal and store the raw absmax; the
    // trailing partial block divides and stores the clamped one.
    bool partial = e - s < blocksize;
    float clamped = std::max(am, 1e-38f);
    float inv = 1.f / clamped;
    absmax[size_t(blk)] = partial ? clamped : am;
    if (!partial && blocksize % kVecRun == 0) {
      // Full blocks in runs of kVecRun weights: the bucket counts in a loop the
      // compiler vectorizes, then two codes per byte (a 70B load quantizes 7e10).
      for (int64_t r = s; r < e; r += kVecRun) {
        float x[kVecRun];
        int32_t cnt[kVecRun] = {};
        for (int j = 0; j < kVecRun; ++j) x[j] = std::clamp(w[r + j] * inv, -1.f, 1.f);
        for (int i = 0; i < 15; ++i)  // the number of midpoints below x, as bucket()
          for (int j = 0; j < kVecRun; ++j) cnt[j] += b.mid[size_t(i)] < x[j];
        for (int j = 0; j < kVecRun; j += 2)
          p.packed[size_t((r + j) / 2)] = uint8_t(b.order[cnt[j]] << 4) | b.order[cnt[j + 1]];
      }
      continue;
    }
    for (int64_t i = s; i < e; ++i) {
      float x = std::clamp(partial ? w[i] / clamped : w[i] * inv, -1.f, 1.f);
      uint8_t q = bucket(b, x);
      p.packed[size_t(i / 2)] |= (i % 2 == 0) ? uint8_t(q << 4) : q;
    }
  }
  if (n % 2) p.packed.back() |= bucket(b, 0.f);  // bnb pads odd lengths with a zero element
  if (!double_quant) {
    p.absmax = std::move(absmax);
    return p;
  }
  p.double_quant = true;
  double sum = 0;
  for (float a : absmax) sum += a;
  p.offset = float(sum / double(absmax.size()));
  std::vector<float> centered(absmax.size());
  for (size_t i = 0; i < absmax.size(); ++i) centered[i] = absmax[i] - p.offset;
  p.qabsmax.resize(absmax.size());
  quantize_blockwise8(centered.data(), int64_t(centered.size()), 256, p.qabsmax.data(), p.absmax2);
  return p;
}

Nf4View make_nf4_view(Code4 code, int64_t rows, int64_t cols, int64_t blocksize, bool double_quant, float offset) {
  QT_CHECK(rows >= 0 && cols >= 0 && blocksize > 0, "make_nf4_view: bad shape or block size");
  Nf4View v;
  v.rows = rows, v.cols = cols, v.blocksize = blocksize, v.dq = double_quant, v.offset = offset;
  const auto& c = code4_values(code);
  std::copy(c.begin(), c.end(), v.code);
  return v;
}

Nf4View Packed4::view(int64_t rows, int64_t cols) const {
  QT_CHECK(rows * cols == numel, "Packed4::view: [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                     "] for " + std::to_string(numel) + " weights");
  Nf4View v = make_nf4_view(code, rows, cols, blocksize, double_quant, offset);
  v.packed = packed.data();
  v.absmax = double_quant ? nullptr : absmax.data();
  v.qabsmax = double_quant ? qabsmax.data() : nullptr;
  v.absmax2 = double_quant ? absmax2.data() : nullptr;
  return v;
}

std::vector<float> decoded_absmax(const Nf4View& v) {
  std::vector<float> a(size_t(v.blocks()));
  const float* map = dynamic_map_signed().data();
  for (size_t i = 0; i < a.size(); ++i) a[i] = v.block_absmax(int64_t(i), map);
  return a;
}

Nf4View with_decoded_absmax(Nf4View v, const std::vector<float>& absmax) {
  QT_CHECK(int64_t(absmax.size()) == v.blocks(), "with_decoded_absmax: one absmax per block");
  v.dq = false;
  v.absmax = absmax.data();
  v.qabsmax = nullptr;
  v.absmax2 = nullptr;
  return v;
}

void dequantize_4bit(const Nf4View& v, int64_t begin, int64_t end, float* out) {
  QT_CHECK(0 <= begin && begin <= end && end <= v.numel(), "dequantize_4bit: bad range");
  const float* map = dynamic_map_signed().data();
  for (int64_t i = begin; i < end; ++i) out[i - begin] = v.at(i, map);
}

}  // namespace qtrain::quant
