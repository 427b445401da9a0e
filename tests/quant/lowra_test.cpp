// LowRA per-output-channel quantization (kernels/quant/lowra.h) against an
// independent torch weighted Lloyd-Max (tests/fixtures/make_lowra_fixtures.py):
// fitted mappings, mse and objectives per row, codes, packed bytes of a
// mixed-bits matrix and dequantized values; then properties checked here with
// independent reference code: the objective never goes up, the packed layout
// round trips, bad shapes throw, a zero block dequantizes to 0.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/error.h"
#include "kernels/lowra_dequant.h"
#include "kernels/quant/lowra.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;
using quant::kLowraGroup;
using quant::kLowraLut;

namespace {

constexpr int64_t kRows = 8, kCols = 128;
constexpr int kBits[] = {1, 2, 4};

struct LowraFixture {
  std::vector<float> w;
  std::vector<float> lut[3], deq[3];  // per entry of kBits
  std::vector<uint8_t> codes[3];
  std::vector<uint8_t> mixed_packed;
  nlohmann::json ref;
};

LowraFixture load_fixture() {
  LowraFixture f;
  f.ref = fixture_json("lowra/lowra-ref.json");
  const std::string bytes = fixture_text("lowra/lowra_8x128.bin");
  size_t off = 0;
  auto take = [&](auto& v, int64_t count) {
    v.resize(size_t(count));
    const size_t len = size_t(count) * sizeof(v[0]);
    if (off + len > bytes.size()) throw std::runtime_error("lowra_8x128.bin is too short");
    std::memcpy(v.data(), bytes.data() + off, len);
    off += len;
  };
  take(f.w, kRows * kCols);
  for (int k = 0; k < 3; ++k) {
    take(f.lut[k], kRows * kLowraLut);
    take(f.codes[k], kRows * kCols);
    take(f.deq[k], kRows * kCols);
  }
  take(f.mixed_packed, f.ref["mixed"]["bytes"].get<int64_t>());
  EXPECT_EQ(off, bytes.size());
  return f;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

// Independent references: the nearest level by scanning (first = lower on a tie), the block
// absmax, and the weighted objective / mse of a mapping on a row.
int nearest_scan(const std::vector<float>& m, float x) {
  int best = 0;
  for (int j = 1; j < int(m.size()); ++j)
    if (std::abs(double(x) - m[size_t(j)]) < std::abs(double(x) - m[size_t(best)])) best = j;
  return best;
}
float absmax_of(const float* w) {
  float a = 0;
  for (int64_t j = 0; j < kLowraGroup; ++j) a = std::max(a, std::abs(w[j]));
  return a;
}
struct RowScore {
  double wobj, mse;
};
RowScore score(const float* w, int64_t cols, const std::vector<float>& m) {
  double num = 0, den = 0, sq = 0;
  for (int64_t b = 0; b < cols / kLowraGroup; ++b) {
    const float a = absmax_of(w + b * kLowraGroup);
    for (int64_t j = b * kLowraGroup; j < (b + 1) * kLowraGroup; ++j) {
      const float x = a > 0 ? w[j] / a : 0.f;
      const float lv = m[size_t(nearest_scan(m, x))];
      num += double(a) * (double(x) - lv) * (double(x) - lv);
      den += a;
      const double e = double(w[j]) - double(lv * a);
      sq += e * e;
    }
  }
  return {den > 0 ? num / den : 0.0, sq / double(cols)};
}

// Rows of N(0, scale) with a few heavy-tailed outliers, different scales per row.
std::vector<float> random_rows(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int64_t> pick(0, cols - 1);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = 0.01f * float(1 + r % 5);
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = s * nd(rng);
    for (int k = 0; k < 2; ++k) w[size_t(r * cols + pick(rng))] = s * 12.f * nd(rng);
  }
  return w;
}

}  // namespace

TEST(Lowra, InitMappingIsListing1) {
  EXPECT_EQ(quant::lowra_init_mapping(1), (std::vector<float>{-1.f, 1.f}));
  EXPECT_EQ(quant::lowra_init_mapping(2), (std::vector<float>{-1.f, 0.f, 0.3379f, 1.f}));
  const auto m4 = quant::lowra_init_mapping(4);
  ASSERT_EQ(m4.size(), 16u);
  EXPECT_EQ(m4[0], -1.f);
  EXPECT_EQ(m4[6], -0.09105f);
  EXPECT_EQ(m4[7], 0.f);
  EXPECT_EQ(m4[11], 0.33791524f);
  EXPECT_EQ(m4[15], 1.f);
  EXPECT_TRUE(std::is_sorted(m4.begin(), m4.end()));
}

// (a) The fit, codes, packed bytes and dequantized values against the torch script.
TEST(Lowra, MatchesTorchFixture) {
  const LowraFixture f = load_fixture();
  for (const char* it_key : {"iters2", "iters20"}) {
    const int iters = std::string(it_key) == "iters2" ? 2 : 20;
    for (int bits : kBits) {
      const auto& want = f.ref[it_key][std::to_string(bits)];
      for (int64_t r = 0; r < kRows; ++r) {
        SCOPED_TRACE(std::string(it_key) + " " + std::to_string(bits) + "-bit row " + std::to_string(r));
        const quant::LowraFit fit = quant::lowra_fit_row(f.w.data() + r * kCols, kCols, bits, iters);
        const auto wm = want["mapping"][size_t(r)].get<std::vector<float>>();
        ASSERT_EQ(fit.mapping.size(), wm.size());
        EXPECT_LT(max_rel_err(fit.mapping, wm), 1e-5);
        EXPECT_LT(rel(fit.mse, want["mse"][size_t(r)].get<double>()), 1e-5);
        // the same iterations ran: the same stop
        const auto ww = want["wmse"][size_t(r)].get<std::vector<double>>();
        ASSERT_EQ(fit.wmse.size(), ww.size());
        for (size_t k = 0; k < ww.size(); ++k) EXPECT_LT(rel(fit.wmse[k], ww[k]), 1e-5) << k;
      }
    }
  }
  // The 20-iteration fixture really exercises the early stop (else the test above proves little).
  EXPECT_LT(f.ref["iters20"]["4"]["wmse"][0].size(), 21u);

  for (int k = 0; k < 3; ++k) {
    const int bits = kBits[k];
    SCOPED_TRACE(std::to_string(bits) + "-bit");
    const std::vector<uint8_t> bv(static_cast<size_t>(kRows), uint8_t(bits));
    // Under the fixture's LUT: the same codes, and dequantized values bit for bit.
    const quant::LowraPacked p = quant::quantize_lowra(f.w.data(), kRows, kCols, bv.data(), f.lut[k].data());
    EXPECT_EQ(p.lut, f.lut[k]);
    int64_t diff = 0;
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < kCols; ++c) diff += p.code(r, c) != int(f.codes[k][size_t(r * kCols + c)]);
    EXPECT_EQ(diff, 0);
    std::vector<float> deq(size_t(kRows * kCols));
    quant::dequantize_lowra_rows(p, 0, kRows, deq.data());
    EXPECT_EQ(deq, f.deq[k]);
    // Under our own fitted LUT: the same codes too.
    std::vector<float> lut(size_t(kRows * kLowraLut), 0.f);
    for (int64_t r = 0; r < kRows; ++r) {
      const auto m = quant::lowra_fit_row(f.w.data() + r * kCols, kCols, bits).mapping;
      std::copy(m.begin(), m.end(), lut.begin() + r * kLowraLut);
    }
    const quant::LowraPacked q = quant::quantize_lowra(f.w.data(), kRows, kCols, bv.data(), lut.data());
    EXPECT_EQ(q.codes, p.codes);
  }

  // Mixed widths: the script's packer's bytes and row offsets.
  const auto mbits = f.ref["mixed"]["bits"].get<std::vector<int>>();
  ASSERT_EQ(int64_t(mbits.size()), kRows);
  std::vector<uint8_t> bv;
  std::vector<float> lut(size_t(kRows * kLowraLut));
  for (int64_t r = 0; r < kRows; ++r) {
    bv.push_back(uint8_t(mbits[size_t(r)]));
    const int k = mbits[size_t(r)] == 1 ? 0 : mbits[size_t(r)] == 2 ? 1 : 2;
    std::copy_n(f.lut[k].begin() + r * kLowraLut, kLowraLut, lut.begin() + r * kLowraLut);
  }
  const quant::LowraPacked p = quant::quantize_lowra(f.w.data(), kRows, kCols, bv.data(), lut.data());
  EXPECT_EQ(p.row_offset, f.ref["mixed"]["row_offset"].get<std::vector<int64_t>>());
  EXPECT_EQ(p.codes, f.mixed_packed);
}

// (b) Lloyd-Max never makes the weighted objective worse; the result is the best mapping seen.
TEST(Lowra, ObjectiveNeverIncreases) {
  const int64_t rows = 12, cols = 320;
  const std::vector<float> w = random_rows(rows, cols, 11);
  for (int bits : kBits)
    for (int64_t r = 0; r < rows; ++r) {
      SCOPED_TRACE(std::to_string(bits) + "-bit row " + std::to_string(r));
      const float* row = w.data() + r * cols;
      const std::vector<float> init = quant::lowra_init_mapping(bits);
      const RowScore s0 = score(row, cols, init);

      const quant::LowraFit f0 = quant::lowra_fit_row(row, cols, bits, 0);
      EXPECT_EQ(f0.mapping, init);
      ASSERT_EQ(f0.wmse.size(), 1u);
      EXPECT_LT(rel(f0.wmse[0], s0.wobj), 1e-12);
      EXPECT_LT(rel(f0.mse, s0.mse), 1e-12);

      const int iters = 30;
      const quant::LowraFit f = quant::lowra_fit_row(row, cols, bits, iters);
      ASSERT_GE(f.wmse.size(), 2u);
      ASSERT_LE(f.wmse.size(), size_t(iters + 1));
      EXPECT_LT(rel(f.wmse[0], s0.wobj), 1e-12);
      // accepted iterations go strictly down; the last one may only fail to go down (the stop),
      // and by no more than rounding (Lloyd-Max cannot raise the objective)
      const size_t n = f.wmse.size();
      for (size_t k = 1; k + 1 < n; ++k) EXPECT_LT(f.wmse[k], f.wmse[k - 1]) << k;
      EXPECT_LE(f.wmse[n - 1], f.wmse[n - 2] * (1 + 1e-9));
      if (n < size_t(iters + 1)) {
        EXPECT_GE(f.wmse[n - 1], f.wmse[n - 2]);
      }
      // the returned mapping is the best one, scored independently
      ASSERT_EQ(f.mapping.size(), size_t(1) << bits);
      EXPECT_TRUE(std::is_sorted(f.mapping.begin(), f.mapping.end()));
      const RowScore s = score(row, cols, f.mapping);
      EXPECT_LT(rel(s.wobj, *std::min_element(f.wmse.begin(), f.wmse.end())), 1e-12);
      EXPECT_LT(rel(f.mse, s.mse), 1e-12);
      EXPECT_LT(s.wobj, s0.wobj);

      // the paper's 2 iterations: strictly better than Listing 1 on these rows
      const quant::LowraFit f2 = quant::lowra_fit_row(row, cols, bits);
      EXPECT_LE(f2.wmse.size(), 3u);
      const RowScore s2 = score(row, cols, f2.mapping);
      EXPECT_LT(s2.wobj, s0.wobj);
      EXPECT_LT(rel(f2.mse, s2.mse), 1e-12);
      EXPECT_GE(s2.wobj, s.wobj * (1 - 1e-12));
    }
}

// (c) Mixed widths pack and unpack: codes are the nearest levels, the bytes follow the
// documented layout, sizes add up.
TEST(Lowra, PackRoundTripMixedBits) {
  const int64_t rows = 11, cols = 192, nb = cols / kLowraGroup;
  const std::vector<float> w = random_rows(rows, cols, 5);
  const uint8_t pattern[] = {4, 1, 2, 2, 4, 1, 1, 4, 2, 4, 1};
  std::vector<uint8_t> bits(pattern, pattern + rows);
  std::vector<float> lut(size_t(rows * kLowraLut), 123.f);  // slots past 2^b: ignored, stored as 0
  std::vector<std::vector<float>> maps;
  for (int64_t r = 0; r < rows; ++r) {
    maps.push_back(quant::lowra_fit_row(w.data() + r * cols, cols, bits[size_t(r)]).mapping);
    std::copy(maps.back().begin(), maps.back().end(), lut.begin() + r * kLowraLut);
  }
  const quant::LowraPacked p = quant::quantize_lowra(w.data(), rows, cols, bits.data(), lut.data());
  ASSERT_EQ(p.rows, rows);
  ASSERT_EQ(p.cols, cols);
  EXPECT_EQ(p.bits, bits);

  int64_t total_bits = 0;
  std::vector<uint8_t> want_codes;
  std::vector<float> want_deq;
  ASSERT_EQ(p.row_offset.size(), size_t(rows + 1));
  for (int64_t r = 0; r < rows; ++r) {
    const int b = bits[size_t(r)];
    total_bits += cols * b;
    EXPECT_EQ(p.row_offset[size_t(r)], int64_t(want_codes.size())) << r;
    for (int j = 0; j < kLowraLut; ++j)
      EXPECT_EQ(p.lut[size_t(r * kLowraLut + j)], j < (1 << b) ? maps[size_t(r)][size_t(j)] : 0.f);
    std::vector<uint8_t> row_bytes(size_t(cols * b / 8), 0);
    for (int64_t c = 0; c < cols; ++c) {
      const float a = absmax_of(w.data() + r * cols + (c / kLowraGroup) * kLowraGroup);
      if (c % kLowraGroup == 0) {
        EXPECT_EQ(p.absmax[size_t(r * nb + c / kLowraGroup)], a);
      }
      const int q = nearest_scan(maps[size_t(r)], w[size_t(r * cols + c)] / a);
      ASSERT_EQ(p.code(r, c), q) << r << "," << c;
      // b bits per code, LSB first, codes never straddle a byte (b divides 8)
      row_bytes[size_t(c * b / 8)] |= uint8_t(q << ((c * b) % 8));
      want_deq.push_back(maps[size_t(r)][size_t(q)] * a);
    }
    want_codes.insert(want_codes.end(), row_bytes.begin(), row_bytes.end());
  }
  EXPECT_EQ(p.row_offset.back(), int64_t(want_codes.size()));
  EXPECT_EQ(p.codes, want_codes);
  EXPECT_EQ(p.absmax.size(), size_t(rows * nb));

  std::vector<float> deq(size_t(rows * cols));
  quant::dequantize_lowra_rows(p, 0, rows, deq.data());
  EXPECT_EQ(deq, want_deq);
  std::vector<float> part(size_t(4 * cols));
  quant::dequantize_lowra_rows(p, 3, 7, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), want_deq.begin() + 3 * cols));
  std::vector<float> one(static_cast<size_t>(cols));
  quant::dequantize_lowra_row(p.codes.data() + p.row_offset[9], p.bits[9], p.lut.data() + 9 * kLowraLut,
                              p.absmax.data() + 9 * nb, cols, one.data());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), want_deq.begin() + 9 * cols));
  EXPECT_LT(norm_rel_err(deq, w), 0.6);  // a real quantization of w (1-bit rows are coarse)

  EXPECT_EQ(p.bytes(), size_t(total_bits / 8) + size_t(rows * kLowraLut) * 4 + size_t(rows * nb) * 4 +
                           size_t(rows + 1) * 8 + size_t(rows));
  EXPECT_DOUBLE_EQ(p.avg_bits(), double(total_bits) / double(rows * cols));
  EXPECT_NEAR(p.avg_bits(), 26.0 / 11.0, 1e-12);
}

// Ties go to the lower level; the midpoint is exact, not a rounded F32 one.
TEST(Lowra, NearestLevelTiesGoLower) {
  std::vector<float> w(64, 0.f);
  w[0] = 1.f;  // absmax 1: x = w
  w[1] = 0.25f;
  w[2] = 0.75f;
  w[3] = -0.5f;
  w[4] = std::nextafter(0.25f, 1.f);
  w[5] = std::nextafter(-0.5f, -1.f);
  w[6] = 0.f;
  // Levels whose F32 sum rounds up: lo + hi = 1 + 0.75 * 2^-23 exactly, 1 + 2^-23 in F32, so
  // the F32 midpoint is 0.5 + 2^-24 while the exact one is 0.5 + 0.75 * 2^-24. x = 0.5 + 2^-24
  // is nearer hi; a rounded F32 midpoint would give lo.
  const float lo = 0.5f - std::ldexp(1.f, -25), hi = 0.5f + std::ldexp(1.f, -23);
  w[7] = 0.5f + std::ldexp(1.f, -24);
  ASSERT_EQ((lo + hi) * 0.5f, w[7]);
  const uint8_t bits[] = {2, 2};
  std::vector<float> lut(32, 0.f);
  const float m0[] = {-1.f, 0.f, 0.5f, 1.f};
  std::copy(m0, m0 + 4, lut.begin());
  const float m1[] = {-1.f, lo, hi, 1.f};
  std::copy(m1, m1 + 4, lut.begin() + 16);
  std::vector<float> w2(w);
  w2.insert(w2.end(), w.begin(), w.end());
  const quant::LowraPacked p = quant::quantize_lowra(w2.data(), 2, 64, bits, lut.data());
  EXPECT_EQ(p.code(0, 0), 3);
  EXPECT_EQ(p.code(0, 1), 1);  // 0.25: tie between 0 and 0.5
  EXPECT_EQ(p.code(0, 2), 2);  // 0.75: tie between 0.5 and 1
  EXPECT_EQ(p.code(0, 3), 0);  // -0.5: tie between -1 and 0
  EXPECT_EQ(p.code(0, 4), 2);
  EXPECT_EQ(p.code(0, 5), 0);
  EXPECT_EQ(p.code(0, 6), 1);
  EXPECT_EQ(p.code(1, 7), 2);
  EXPECT_EQ(nearest_scan(std::vector<float>(m1, m1 + 4), w[7]), 2);
}

// (d) Bad input throws qtrain::Error.
TEST(Lowra, BadInputThrows) {
  std::vector<float> w(2 * 128, 0.5f), lut(2 * kLowraLut, 0.f);
  const std::vector<float> m2 = quant::lowra_init_mapping(2);
  std::copy(m2.begin(), m2.end(), lut.begin());
  std::copy(m2.begin(), m2.end(), lut.begin() + kLowraLut);
  const uint8_t bits[] = {2, 2};
  try {
    quant::quantize_lowra(w.data(), 2, 100, bits, lut.data());
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 100]"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
  }
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 0, bits, lut.data()), Error);
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 32, bits, lut.data()), Error);
  EXPECT_THROW(quant::quantize_lowra(w.data(), -1, 128, bits, lut.data()), Error);
  const uint8_t bad_bits[] = {2, 3};
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 128, bad_bits, lut.data()), Error);
  const uint8_t zero_bits[] = {0, 2};
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 128, zero_bits, lut.data()), Error);
  std::vector<float> desc(lut);
  std::swap(desc[kLowraLut + 1], desc[kLowraLut + 2]);
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 128, bits, desc.data()), Error);
  std::vector<float> nan_lut(lut);
  nan_lut[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quant::quantize_lowra(w.data(), 2, 128, bits, nan_lut.data()), Error);
  std::vector<float> nan_w(w);
  nan_w[200] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(quant::quantize_lowra(nan_w.data(), 2, 128, bits, lut.data()), Error);
  nan_w[200] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quant::quantize_lowra(nan_w.data(), 2, 128, bits, lut.data()), Error);
  EXPECT_NO_THROW(quant::quantize_lowra(w.data(), 2, 128, bits, lut.data()));

  EXPECT_THROW(quant::lowra_fit_row(w.data(), 100, 2), Error);
  EXPECT_THROW(quant::lowra_fit_row(w.data(), 0, 2), Error);
  EXPECT_THROW(quant::lowra_fit_row(w.data(), 128, 3), Error);
  EXPECT_THROW(quant::lowra_fit_row(w.data(), 128, 8), Error);
  EXPECT_THROW(quant::lowra_fit_row(w.data(), 128, 2, -1), Error);
  EXPECT_THROW(quant::lowra_fit_row(nan_w.data() + 128, 128, 2), Error);
  EXPECT_THROW(quant::lowra_init_mapping(3), Error);
  EXPECT_NO_THROW(quant::lowra_fit_row(w.data(), 128, 2));
}

// (e) A block whose absmax is 0 dequantizes to 0 and does not pull the fit.
TEST(Lowra, ZeroBlockIsZero) {
  const int64_t cols = 192;
  std::vector<float> w = random_rows(1, cols, 3);
  std::fill(w.begin() + 64, w.begin() + 128, 0.f);  // the middle block
  for (int bits : kBits) {
    SCOPED_TRACE(std::to_string(bits) + "-bit");
    // 1 bit has no 0 level: the zero block's x = 0 takes a nonzero level, times absmax 0
    const quant::LowraFit f = quant::lowra_fit_row(w.data(), cols, bits);
    std::vector<float> lut(kLowraLut, 0.f);
    std::copy(f.mapping.begin(), f.mapping.end(), lut.begin());
    const uint8_t b = uint8_t(bits);
    const quant::LowraPacked p = quant::quantize_lowra(w.data(), 1, cols, &b, lut.data());
    EXPECT_EQ(p.absmax[1], 0.f);
    std::vector<float> deq(size_t(cols), 1.f);
    quant::dequantize_lowra_rows(p, 0, 1, deq.data());
    for (int64_t c = 64; c < 128; ++c) EXPECT_EQ(deq[size_t(c)], 0.f) << c;
    for (int64_t c : {0, 130}) EXPECT_NE(deq[size_t(c)], 0.f) << c;
    // weight 0: the fit equals the fit of the other two blocks alone
    std::vector<float> rest(w.begin(), w.begin() + 64);
    rest.insert(rest.end(), w.begin() + 128, w.end());
    const quant::LowraFit g = quant::lowra_fit_row(rest.data(), 128, bits);
    EXPECT_EQ(f.mapping, g.mapping);
    ASSERT_EQ(f.wmse.size(), g.wmse.size());
    for (size_t k = 0; k < f.wmse.size(); ++k) EXPECT_LT(rel(f.wmse[k], g.wmse[k]), 1e-12);
    EXPECT_LT(rel(f.mse, g.mse * 128.0 / 192.0), 1e-12);  // same error, over more weights
  }
  // An all-zero row: no NaN anywhere, the init mapping, zero error.
  const std::vector<float> z(128, 0.f);
  const quant::LowraFit f = quant::lowra_fit_row(z.data(), 128, 4);
  EXPECT_EQ(f.mapping, quant::lowra_init_mapping(4));
  EXPECT_EQ(f.mse, 0.0);
  for (double v : f.wmse) EXPECT_EQ(v, 0.0);
  const uint8_t b1 = 1;
  std::vector<float> lut1(kLowraLut, 0.f);
  lut1[0] = -1.f;
  lut1[1] = 1.f;
  const quant::LowraPacked p = quant::quantize_lowra(z.data(), 1, 128, &b1, lut1.data());
  std::vector<float> deq(128, 1.f);
  quant::dequantize_lowra_rows(p, 0, 1, deq.data());
  for (float v : deq) EXPECT_EQ(v, 0.f);
}

// The decode product's CPU reference (kernels/lowra_dequant.h): x times the
// dequantized rows, for 1 to 8 input rows and mixed widths, against a double
// sum over dequantize_lowra_rows.
TEST(Lowra, MatvecIsTheDequantizedProduct) {
  const int64_t rows = 21, cols = 192;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  std::mt19937_64 g(5);
  std::normal_distribution<float> n(0.f, 0.05f);
  for (float& v : w) v = n(g);
  std::vector<uint8_t> bits(static_cast<size_t>(rows));
  std::vector<float> lut(size_t(rows) * kLowraLut, 0.f);
  for (int64_t r = 0; r < rows; ++r) {
    bits[size_t(r)] = uint8_t(r % 3 == 0 ? 1 : r % 3 == 1 ? 2 : 4);
    const std::vector<float> m = quant::lowra_init_mapping(bits[size_t(r)]);
    std::copy(m.begin(), m.end(), lut.begin() + r * kLowraLut);
  }
  const quant::LowraPacked p = quant::quantize_lowra(w.data(), rows, cols, bits.data(), lut.data());
  std::vector<float> deq(size_t(rows * cols));
  quant::dequantize_lowra_rows(p, 0, rows, deq.data());
  auto host = [](const void* d, size_t bytes, int64_t n, DType t) {
    Tensor h = Tensor::empty({n}, t);
    std::memcpy(h.raw(), d, bytes);
    return h;
  };
  std::vector<int32_t> off(p.row_offset.begin(), p.row_offset.begin() + rows);
  Tensor codes = host(p.codes.data(), p.codes.size(), int64_t(p.codes.size()), DType::U8);
  Tensor o = host(off.data(), off.size() * 4, rows, DType::I32), b = host(p.bits.data(), size_t(rows), rows, DType::U8);
  Tensor l = host(p.lut.data(), p.lut.size() * 4, int64_t(p.lut.size()), DType::F32);
  Tensor a = host(p.absmax.data(), p.absmax.size() * 4, int64_t(p.absmax.size()), DType::F32);
  for (int64_t m : {1, 3, 8}) {
    Tensor x = randn({m, cols}, 9 + uint64_t(m)), y = Tensor::empty({m, rows}, DType::F32);
    lowra_matvec(y, x, codes, o, b, l, a);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += double(x.f32()[i * cols + c]) * deq[size_t(r * cols + c)];
        EXPECT_NEAR(y.f32()[i * rows + r], s, 1e-5 * (1 + std::fabs(s))) << m << " " << i << " " << r;
      }
  }
  Tensor x9 = randn({9, cols}, 1), y9 = Tensor::empty({9, rows}, DType::F32);
  EXPECT_THROW(lowra_matvec(y9, x9, codes, o, b, l, a), Error);  // more than 8 rows: the dense path's job
}
