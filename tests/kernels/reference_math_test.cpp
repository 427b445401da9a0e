#include "kernels/cpu/reference_math.h"

#include <cmath>
#include <limits>

#include "tests/test_util.h"

using namespace qtrain;

TEST(ExpFast, WithinTwoUlpOfExpOverTheFloatRange) {
  double worst = 0;
  for (float x = -87.f; x < 88.5f; x += 0.001373f) {
    const double e = std::exp(double(x));
    worst = std::max(worst, std::abs(double(cpu::exp_fast(x)) - e) / e);
  }
  EXPECT_LT(worst, 2 * 5.97e-8);  // 2^-24 is half an ulp at 1
  EXPECT_EQ(cpu::exp_fast(0.f), 1.f);
  EXPECT_EQ(cpu::exp_fast(-std::numeric_limits<float>::infinity()), 0.f);
  EXPECT_EQ(cpu::exp_fast(-1000.f), 0.f);
  EXPECT_TRUE(std::isinf(cpu::exp_fast(1000.f)));
}

TEST(ExpFast, SelectAndMax) {
  EXPECT_EQ(cpu::select(true, 1.f, 2.f), 1.f);
  EXPECT_EQ(cpu::select(false, 1.f, 2.f), 2.f);
  EXPECT_EQ(cpu::max_fast(-3.f, -std::numeric_limits<float>::infinity()), -3.f);
}
