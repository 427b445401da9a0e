// Bit-identity of kernels/quant against bitsandbytes 0.50.2 on the CPU
// (fixtures: tests/fixtures/quant/make_quant_fixtures.py).
#include <cstring>
#include <fstream>

#include "kernels/quant/dynamic_map.h"
#include "kernels/quant/fp4.h"
#include "kernels/quant/int8.h"
#include "kernels/quant/nf4.h"
#include "tests/quant/quant_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::quant;
using qtrain::testing::load_quant_fixture;

namespace {

template <class T>
std::vector<T> load(const std::string& name) {
  return load_quant_fixture<T>(name);
}

size_t bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  size_t bad = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) bad += std::memcmp(&a[i], &b[i], 4) != 0;
  return bad;
}

size_t byte_mismatches(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  size_t bad = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) bad += a[i] != b[i];
  return bad;
}

std::vector<float> dequant_all(const Packed4& p) {
  std::vector<float> out(size_t(p.numel));
  dequantize_4bit(p.view(), 0, p.numel, out.data());
  return out;
}

void check_4bit(Code4 code, bool dq) {
  auto w = load<float>("w");
  std::string tag = std::string(code4_name(code)) + (dq ? "_dq" : "");
  Packed4 p = quantize_4bit(w.data(), int64_t(w.size()), code, dq);
  EXPECT_EQ(byte_mismatches(p.packed, load<uint8_t>(tag + "_packed")), 0u) << tag;
  if (!dq) {
    EXPECT_EQ(bit_mismatches(p.absmax, load<float>(tag + "_absmax")), 0u) << tag;
    EXPECT_EQ(bit_mismatches(dequant_all(p), load<float>(tag + "_deq")), 0u) << tag;
    return;
  }
  // torch's vectorized float mean sums in another order than our double sum:
  // the offset (and so the statistics' absmax) may differ in the last bit
  float off = load<float>(tag + "_offset")[0];
  EXPECT_LE(std::fabs(p.offset - off), std::fabs(off) * 2.4e-7f) << tag;
  auto am2 = load<float>(tag + "_absmax2");
  ASSERT_EQ(p.absmax2.size(), am2.size());
  for (size_t i = 0; i < am2.size(); ++i) EXPECT_NEAR(p.absmax2[i], am2[i], std::fabs(am2[i]) * 1e-6f) << tag;
  // bnb's native 8-bit search is approximate next to midpoints (dynamic_map.h)
  EXPECT_LE(byte_mismatches(p.qabsmax, load<uint8_t>(tag + "_qabsmax")), p.qabsmax.size() / 50) << tag;
  // with bnb's own statistics, dequantization is bit-identical
  Packed4 ref = p;
  ref.packed = load<uint8_t>(tag + "_packed");
  ref.qabsmax = load<uint8_t>(tag + "_qabsmax");
  ref.absmax2 = load<float>(tag + "_absmax2");
  ref.offset = load<float>(tag + "_offset")[0];
  EXPECT_EQ(bit_mismatches(dequant_all(ref), load<float>(tag + "_deq")), 0u) << tag;
}

}  // namespace

TEST(Quant, DynamicMapIsBnbs) {
  auto ref = load<float>("dynamic_map");
  const auto& m = dynamic_map_signed();
  EXPECT_EQ(bit_mismatches(std::vector<float>(m.begin(), m.end()), ref), 0u);
}

TEST(Quant, Nf4MatchesBitsandbytes) { check_4bit(Code4::NF4, false); }
TEST(Quant, Nf4DoubleQuantMatchesBitsandbytes) { check_4bit(Code4::NF4, true); }
TEST(Quant, Fp4MatchesBitsandbytes) { check_4bit(Code4::FP4, false); }
TEST(Quant, Fp4DoubleQuantMatchesBitsandbytes) { check_4bit(Code4::FP4, true); }

TEST(Quant, Nf4OddLengthAndPartialBlock) {
  std::vector<float> w = {0.5f, -1.f, 0.25f};  // one partial block, odd: padded low nibble = code of 0
  Packed4 p = quantize_nf4(w.data(), 3, false);
  ASSERT_EQ(p.packed.size(), 2u);
  EXPECT_EQ(p.packed[0], uint8_t((12 << 4) | 0));  // 0.5 -> 0.4407 (12, midpoint 0.5017), -1 -> 0
  EXPECT_EQ(p.packed[1], uint8_t((10 << 4) | 7));  // 0.25 -> 0.2461 (10), pad 0 -> 7
}

TEST(Quant, Int8RowsMatchBitsandbytes) {
  auto w = load<float>("w");
  int64_t cols = 128, rows = int64_t(w.size()) / cols;
  Int8Rows p = quantize_int8_rows(w.data(), rows, cols);
  EXPECT_EQ(bit_mismatches(p.absmax, load<float>("int8_rowabsmax")), 0u);
  std::vector<uint8_t> q(p.q.size());
  std::memcpy(q.data(), p.q.data(), q.size());
  EXPECT_EQ(byte_mismatches(q, load<uint8_t>("int8_q")), 0u);
  std::vector<float> d(w.size());
  dequantize_int8_rows(p, 0, rows, d.data());
  for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(d[i], w[i], p.absmax[i / size_t(cols)] / 254.f + 1e-7f);
}
