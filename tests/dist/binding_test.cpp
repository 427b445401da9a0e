#include "dist/binding.h"

#include "tests/test_util.h"

namespace qtrain {

TEST(Binding, SplitEvenlyCoversEveryItemOnce) {
  for (int n : {1, 7, 16, 64})
    for (int count : {1, 2, 3, 8}) {
      if (n < count) continue;
      int next = 0;
      for (int i = 0; i < count; ++i) {
        Share s = split_evenly(n, i, count);
        EXPECT_EQ(s.begin, next) << n << " " << i << " " << count;
        EXPECT_GE(s.end - s.begin, n / count);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  // More members than items: round-robin single items.
  EXPECT_EQ(split_evenly(2, 3, 4).begin, 1);
  EXPECT_EQ(split_evenly(2, 3, 4).end, 2);
  EXPECT_EQ(split_evenly(0, 0, 4).end, 0);
}

TEST(Binding, SingleCpuRankIsLeftUnboundAndDisabledSaysSo) {
  SingleCommunicator comm;
  EXPECT_NE(bind_rank(comm, Device::CPU, true).find("not bound"), std::string::npos);
  EXPECT_NE(bind_rank(comm, Device::CPU, false).find("--no-bind"), std::string::npos);
}

}  // namespace qtrain
