// The quantized-weight ops of kernels/quant_matmul.h on the CPU (the reference
// the CUDA kernels are tested against), on bitsandbytes' own bytes.
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/quant_matmul.h"
#include "tests/quant/quant_fixture.h"

namespace qtrain {
using testing::load_quant_fixture;

namespace {

// bnb's packed weight with bnb's statistics, as a Packed4.
quant::Packed4 bnb_packed(quant::Code4 code, bool dq) {
  std::string tag = std::string(quant::code4_name(code)) + (dq ? "_dq" : "");
  quant::Packed4 p;
  p.code = code;
  p.numel = 32 * 128;
  p.double_quant = dq;
  p.packed = load_quant_fixture<uint8_t>(tag + "_packed");
  if (dq) {
    p.qabsmax = load_quant_fixture<uint8_t>(tag + "_qabsmax");
    p.absmax2 = load_quant_fixture<float>(tag + "_absmax2");
    p.offset = load_quant_fixture<float>(tag + "_offset")[0];
  } else {
    p.absmax = load_quant_fixture<float>(tag + "_absmax");
  }
  return p;
}

TEST(QuantOps, DequantizeRowsIsBitsandbytesDequantization) {
  for (auto code : {quant::Code4::NF4, quant::Code4::FP4})
    for (bool dq : {false, true}) {
      std::string tag = std::string(quant::code4_name(code)) + (dq ? "_dq" : "");
      auto deq = load_quant_fixture<float>(tag + "_deq");
      Quant4Tensor w = Quant4Tensor::from_packed(bnb_packed(code, dq), 32, 128);
      EXPECT_EQ(w.bytes(), bnb_packed(code, dq).bytes()) << tag;
      for (int64_t row0 : {0, 5, 31}) {
        Tensor out = Tensor::empty({32 - row0, 128}, DType::F32);
        dequantize_rows_4bit(out, w, row0);
        EXPECT_EQ(std::memcmp(out.f32(), deq.data() + row0 * 128, size_t(out.numel()) * 4), 0) << tag << " " << row0;
      }
    }
}

// Packed4 (host vectors) and Quant4Tensor (tensors) are two storages of one
// view, quant::Nf4View: decoding either gives bnb's values, from any element
// (odd starts included), and the view with its absmax decoded once gives the same bits.
TEST(QuantOps, BothStoragesDecodeThroughOneView) {
  for (auto code : {quant::Code4::NF4, quant::Code4::FP4})
    for (bool dq : {false, true}) {
      std::string tag = std::string(quant::code4_name(code)) + (dq ? "_dq" : "");
      const auto deq = load_quant_fixture<float>(tag + "_deq");
      const quant::Packed4 p = bnb_packed(code, dq);
      const Quant4Tensor t = Quant4Tensor::from_packed(p, 32, 128);
      const quant::Nf4View pv = p.view(32, 128), tv = t.view();
      EXPECT_EQ(pv.numel(), tv.numel());
      EXPECT_EQ(pv.dq, dq);
      EXPECT_EQ(std::memcmp(pv.code, tv.code, sizeof(pv.code)), 0);
      const std::vector<float> absmax = quant::decoded_absmax(pv);
      const quant::Nf4View decoded = quant::with_decoded_absmax(pv, absmax);
      for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 4096}, {1, 130}, {4095, 4096}}) {
        std::vector<float> a(size_t(end - begin)), b(a.size()), c(a.size());
        quant::dequantize_4bit(pv, begin, end, a.data());
        quant::dequantize_4bit(tv, begin, end, b.data());
        quant::dequantize_4bit(decoded, begin, end, c.data());
        EXPECT_EQ(std::memcmp(a.data(), deq.data() + begin, a.size() * 4), 0) << tag << " from " << begin;
        EXPECT_EQ(std::memcmp(b.data(), a.data(), a.size() * 4), 0) << tag << " from " << begin;
        EXPECT_EQ(std::memcmp(c.data(), a.data(), a.size() * 4), 0) << tag << " from " << begin;
      }
    }
}

TEST(QuantOps, DequantizeInt8RowsIsBitsandbytesFormula) {
  auto q = load_quant_fixture<int8_t>("int8_q");
  auto absmax = load_quant_fixture<float>("int8_rowabsmax");
  quant::Int8Rows p;
  p.rows = 32, p.cols = 128, p.q = q, p.absmax = absmax;
  Int8Tensor w = Int8Tensor::from_rows(p);
  Tensor out = Tensor::empty({4, 128}, DType::F32);
  dequantize_rows_int8(out, w, 7);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 128; ++c) {
      // bnb: int8_vectorwise_dequant = q * absmax * 7.874015718698502e-3 (float32)
      float want = float(q[size_t((7 + r) * 128 + c)]) * absmax[size_t(7 + r)] * 7.874015718698502e-3f;
      ASSERT_EQ(out.f32()[r * 128 + c], want) << r << "," << c;
    }
}

TEST(QuantOps, Matmul4bitIsTheDenseProductOfTheDequantizedWeight) {
  Quant4Tensor w = Quant4Tensor::from_packed(bnb_packed(quant::Code4::NF4, true), 32, 128);
  auto deq = load_quant_fixture<float>("nf4_dq_deq");
  Tensor x = testing::randn({3, 128}, 9), y = Tensor::empty({3, 32}, DType::F32);
  matmul_4bit(y, x, w);
  for (int64_t m = 0; m < 3; ++m)
    for (int64_t o = 0; o < 32; ++o) {
      double want = 0;
      for (int64_t c = 0; c < 128; ++c) want += double(x.f32()[m * 128 + c]) * deq[size_t(o * 128 + c)];
      ASSERT_NEAR(y.f32()[m * 32 + o], want, 1e-5 * (1 + std::abs(want)));
    }
}

TEST(QuantOps, RowsOutOfRangeAreRefused) {
  Quant4Tensor w = Quant4Tensor::from_packed(bnb_packed(quant::Code4::NF4, false), 32, 128);
  Tensor out = Tensor::empty({4, 128}, DType::F32);
  EXPECT_THROW(dequantize_rows_4bit(out, w, 29), Error);
}

}  // namespace
}  // namespace qtrain
