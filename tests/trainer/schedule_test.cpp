// Learning rates against HF transformers' schedulers (values printed by
// tests/trainer/make_reference_values.py: base lr 3e-4, warmup 3, total 10).
#include "trainer/schedule.h"

#include "kernels/error.h"
#include "tests/test_util.h"

namespace qtrain {

static void expect_lrs(ScheduleKind kind, int64_t warmup, int64_t total, const std::vector<double>& want) {
  LrSchedule s(kind, 3e-4, warmup, total);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(s.lr(int64_t(i)), want[i], 1e-15) << "step " << i;
}

TEST(Schedule, ConstantWithWarmupMatchesTransformers) {
  expect_lrs(ScheduleKind::Constant, 3, 10,
             {0.0, 9.999999999999999e-05, 0.00019999999999999998, 0.0003, 0.0003, 0.0003, 0.0003, 0.0003});
}

TEST(Schedule, LinearWithWarmupMatchesTransformers) {
  expect_lrs(ScheduleKind::Linear, 3, 10,
             {0.0, 9.999999999999999e-05, 0.00019999999999999998, 0.0003, 0.0002571428571428571,
              0.00021428571428571427, 0.0001714285714285714, 0.00012857142857142855, 8.57142857142857e-05,
              4.285714285714285e-05, 0.0, 0.0});
}

TEST(Schedule, CosineWithWarmupMatchesTransformers) {
  // Past `total` HF's cosine climbs again (num_cycles 0.5 is half a period); we match that too.
  expect_lrs(ScheduleKind::Cosine, 3, 10,
             {0.0, 9.999999999999999e-05, 0.00019999999999999998, 0.0003, 0.0002851453301853628,
              0.00024352347027881003, 0.00018337814009344714, 0.00011662185990655284, 5.6476529721189974e-05,
              1.4854669814637143e-05, 0.0, 1.4854669814637127e-05});
}

TEST(Schedule, CosineWithoutWarmupStartsAtBaseLr) {
  expect_lrs(ScheduleKind::Cosine, 0, 7,
             {0.0003, 0.0002851453301853628, 0.00024352347027881003, 0.00018337814009344714,
              0.00011662185990655284, 5.6476529721189974e-05, 1.4854669814637143e-05, 0.0});
}

TEST(Schedule, ParseNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_STREQ(schedule_name(parse_schedule("linear")), "linear");
  try {
    parse_schedule("exponential");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("--schedule"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("exponential"), std::string::npos);
  }
}

}  // namespace qtrain
