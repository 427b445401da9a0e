#include "kernels/tensor.h"

#include "tests/test_util.h"

using namespace qtrain;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::zeros({4, 3}, DType::F32);
  Tensor r = t.rows(1, 3);
  r.f32()[0] = 5.f;
  EXPECT_EQ(t.f32()[3], 5.f);
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  EXPECT_THROW(t.view({5, 3}), Error);
}

TEST(Tensor, Bf16RoundTripRoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

TEST(Tensor, F16Conversions) {
  for (float v : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, 0.1f}) {
    float back = f16_to_f32(f32_to_f16(v));
    EXPECT_NEAR(back, v, std::abs(v) * 1e-3 + 1e-9) << v;
  }
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f16_to_f32(0x0001), 5.9604645e-08f);
}

TEST(Tensor, DtypeConversionOnCopy) {
  Tensor a = Tensor::from_vector({1.f, 2.f, 3.f}, {3}, Device::CPU, DType::BF16);
  auto v = a.to_vector();
  EXPECT_EQ(v, (std::vector<float>{1.f, 2.f, 3.f}));
}

// A tensor past the size that splits the host conversion over the cores (4M elements, as a
// checkpoint's weights): every element converted exactly as one at a time, both ways.
TEST(Tensor, LargeConversionsEqualElementwise) {
  const int64_t n = (int64_t(1) << 22) + 37;
  Tensor f = qtrain::testing::randn({n}, 5, 3.f);
  Tensor b = f.to(Device::CPU, DType::BF16);
  const auto* bits = static_cast<const uint16_t*>(b.raw());
  for (int64_t i = 0; i < n; i += 9973) ASSERT_EQ(bits[i], f32_to_bf16(f.f32()[i])) << i;
  ASSERT_EQ(bits[n - 1], f32_to_bf16(f.f32()[n - 1]));
  Tensor back = b.to(Device::CPU, DType::F32);
  for (int64_t i = 0; i < n; i += 9973) ASSERT_EQ(back.f32()[i], bf16_to_f32(bits[i])) << i;
  ASSERT_EQ(back.f32()[n - 1], bf16_to_f32(bits[n - 1]));
}
