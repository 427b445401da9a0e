// The column-group ops (Q-BLoRA's pool and repeat-interleave) against hand
// loops, and each being the other's adjoint: <pool(x), y> == <x, repeat(y)> / k.
#include "kernels/col_groups.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace qtrain::testing {
namespace {

TEST(ColGroups, SumAndRepeatMatchLoops) {
  const int64_t N = 3, W = 12, k = 4;
  Tensor x = randn({N, W}, 1);
  Tensor p = Tensor::zeros({N, W / k}, DType::F32);
  sum_col_groups(p, x, k, 0.25f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W / k; ++j) {
      float s = 0;
      for (int64_t t = 0; t < k; ++t) s += x.f32()[n * W + j * k + t];
      EXPECT_FLOAT_EQ(p.f32()[n * (W / k) + j], 0.25f * s);
    }
  Tensor y = x.clone();
  add_repeat_cols(y, p, k, 2.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < W; ++i)
      EXPECT_FLOAT_EQ(y.f32()[n * W + i], x.f32()[n * W + i] + 2.f * p.f32()[n * (W / k) + i / k]);
}

TEST(ColGroups, RepeatIsThePoolsAdjoint) {
  const int64_t N = 5, W = 8, k = 2;
  Tensor x = randn({N, W}, 2), y = randn({N, W / k}, 3);
  Tensor px = Tensor::zeros({N, W / k}, DType::F32), ry = Tensor::zeros({N, W}, DType::F32);
  sum_col_groups(px, x, k, 1.f / float(k));
  add_repeat_cols(ry, y, k, 1.f);
  double a = 0, b = 0;
  for (int64_t i = 0; i < N * W / k; ++i) a += double(px.f32()[i]) * y.f32()[i];
  for (int64_t i = 0; i < N * W; ++i) b += double(x.f32()[i]) * ry.f32()[i];
  EXPECT_NEAR(a, b / double(k), 1e-5);
}

TEST(ColGroups, RefusesMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 6}, DType::F32), out = Tensor::zeros({2, 4}, DType::F32);
  EXPECT_THROW(sum_col_groups(out, x, 2, 1.f), Error);
  EXPECT_THROW(add_repeat_cols(x, out, 2, 1.f), Error);
}

}  // namespace
}  // namespace qtrain::testing
