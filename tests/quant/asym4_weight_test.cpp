// The asymmetric tiled 4-bit base (QA-BLoRA's): min-max rounding within half a
// step, every tile's extremes exact, the stored form read back bit for bit, a
// zero shift being exactly a tile-constant change, and clear shape errors.
#include "models/asym4_weight.h"

#include <gtest/gtest.h>

#include <cmath>

#include "models/merged_model.h"
#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

TEST(Asym4Weight, RoundsWithinHalfAStepAndKeepsTileExtremes) {
  const int64_t out = 16, in = 12;
  Tensor w = randn({out, in}, 1);
  Asym4Weight q(w, 8, 4, "w");
  Tensor d = q.dense_f32();
  const int64_t ti = in / 4;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const float step = q.scale().f32()[(o / 8) * ti + i / 4];
      EXPECT_LE(std::fabs(d.f32()[o * in + i] - w.f32()[o * in + i]), 0.5f * step + 1e-6f) << o << "," << i;
    }
  for (int64_t a = 0; a < out / 8; ++a)
    for (int64_t b = 0; b < ti; ++b) {  // min-max: the tile's minimum is code 0, its maximum code 15
      float lo = INFINITY, hi = -INFINITY, dlo = INFINITY, dhi = -INFINITY;
      for (int64_t o = a * 8; o < a * 8 + 8; ++o)
        for (int64_t i = b * 4; i < b * 4 + 4; ++i) {
          lo = std::min(lo, w.f32()[o * in + i]), hi = std::max(hi, w.f32()[o * in + i]);
          dlo = std::min(dlo, d.f32()[o * in + i]), dhi = std::max(dhi, d.f32()[o * in + i]);
        }
      EXPECT_EQ(dlo, lo);
      EXPECT_NEAR(dhi, hi, 1e-6f);
    }
  EXPECT_EQ(q.bytes(), size_t(out * in / 2 + 2 * 4 * (out / 8) * ti));
}

TEST(Asym4Weight, StoredFormReadsBackAndZeroShiftIsExact) {
  Tensor w = randn({8, 8}, 2);
  Asym4Weight q(w, 8, 4, "w");
  StateDictSource src({{"m.weight", q.codes().to(Device::CPU, DType::F32)},
                       {"m.weight.asym4_scale", q.scale()},
                       {"m.weight.asym4_zero", q.zero()}});
  auto back = Asym4Weight::from_source(src, "m.weight", 8, 8);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->dense_f32().to_vector(), q.dense_f32().to_vector());
  EXPECT_EQ(Asym4Weight::from_source(src, "other.weight", 8, 8), nullptr);  // not stored that way
  EXPECT_THROW(Asym4Weight::from_source(src, "m.weight", 8, 16), Error);
  Tensor shift = Tensor::from_vector({0.25f, -1.f}, {1, 2});
  Tensor d0 = q.dense_f32(), d1 = q.with_zero_shift(shift)->dense_f32();
  for (int64_t o = 0; o < 8; ++o)
    for (int64_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(d1.f32()[o * 8 + i], d0.f32()[o * 8 + i] + (i < 4 ? 0.25f : -1.f));
}

TEST(Asym4Weight, IndivisibleTilesAreAUserError) {
  try {
    Asym4Weight q(randn({12, 8}, 3), 8, 4, "model.layers.0.mlp.up_proj.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("up_proj"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qtrain::testing
