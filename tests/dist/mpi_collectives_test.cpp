// Multi-rank checks: run by tests/scripts/dist_mpi_allreduce.sh as
//   mpirun -np 4 test_dist --gtest_filter='Mpi*'
// and trivially true when run alone (one rank, the single communicator).
#include <chrono>
#include <csignal>
#include <numeric>
#include <thread>

#include "dist/bootstrap.h"
#include "dist/grad_reducer.h"
#include "tests/test_util.h"

namespace qtrain {

namespace {
// One communicator per process: MPI is initialised once.
Communicator& comm() {
  static std::unique_ptr<Communicator> c = make_communicator(Device::CPU, 60);
  return *c;
}
}  // namespace

TEST(MpiCollectives, AllreduceBroadcastBarrier) {
  Communicator& c = comm();
  const int r = c.rank(), w = c.world();
  ASSERT_GE(w, 1);
  ASSERT_LT(r, w);
  ASSERT_LT(c.local_rank(), c.local_world());
  // Odd length and values whose sum is exact in fp32.
  const int64_t n = 1001;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float((r + 1) * (i % 7)) - 0.5f * float(i % 3);
  Tensor t = Tensor::from_vector(v, {n});
  c.allreduce_sum(t);
  auto out = t.to_vector();
  const float ranks_sum = float(w * (w + 1) / 2);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out[size_t(i)], ranks_sum * float(i % 7) - 0.5f * float(w) * float(i % 3)) << "element " << i;

  double d[2] = {1.0, double(r)};
  c.allreduce_sum(d, 2);
  EXPECT_EQ(d[0], double(w));
  EXPECT_EQ(d[1], double(w * (w - 1) / 2));

  const int root = w - 1;
  Tensor b = Tensor::from_vector({float(r), float(r) * 2.f, 7.f}, {3});
  c.broadcast(b, root);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{float(root), float(root) * 2.f, 7.f}));
  c.barrier();
}

TEST(MpiGradReducer, BucketedSumEqualsSumOfRankGradients) {
  Communicator& c = comm();
  ParamSet ps;
  ps.declare("embed", {50, 8}, false, -1);
  for (int l = 0; l < 4; ++l) {
    ps.declare("l" + std::to_string(l) + ".lora_A", {4, 37}, true, l);
    ps.declare("l" + std::to_string(l) + ".lora_B", {37, 4}, true, l);
  }
  ps.declare("head", {8, 50}, false, -1);
  ps.allocate(Device::CPU);
  auto rank_grads = [&](int rank) { return testing::randn({ps.grads().numel()}, 100 + uint64_t(rank)); };
  ps.grads().copy_from(rank_grads(c.rank()));
  GradReducer reducer(c, ps, 600);  // several buckets
  ASSERT_GT(reducer.buckets().size(), 3u);
  // Two accumulation micro-steps: the first must not communicate.
  reducer.set_enabled(false);
  for (int l = 3; l >= 0; --l) reducer.layer_done(l);
  reducer.finish();
  EXPECT_EQ(ps.grads().to_vector(), rank_grads(c.rank()).to_vector());
  reducer.set_enabled(true);
  for (int l = 3; l >= 0; --l) reducer.layer_done(l);
  reducer.finish();
  std::vector<double> want(size_t(ps.grads().numel()), 0.0);
  for (int r = 0; r < c.world(); ++r) {
    auto g = rank_grads(r).to_vector();
    for (size_t i = 0; i < want.size(); ++i) want[i] += g[i];
  }
  auto got = ps.grads().to_vector();
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << i;
}

}  // namespace qtrain

namespace qtrain {

// Driven by tests/scripts/dist_mpi_failure.sh with QTRAIN_TEST_MPI_FAILURE set:
// the last rank dies (kill) or stops taking part (hang); the others are in an
// all-reduce and must not wait forever. Skipped otherwise.
TEST(MpiFailure, PeerDiesOrHangs) {
  const char* mode = std::getenv("QTRAIN_TEST_MPI_FAILURE");
  if (!mode) GTEST_SKIP() << "run by tests/scripts/dist_mpi_failure.sh";
  auto c = make_communicator(Device::CPU, /*comm_timeout_s=*/3);
  if (c->world() < 2) GTEST_SKIP() << "needs 2+ ranks";
  Tensor t = Tensor::zeros({1024}, DType::F32);
  c->allreduce_sum(t);  // everyone is up
  if (c->rank() == c->world() - 1) {
    if (std::string(mode) == "kill") std::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(120));  // hang
  }
  c->allreduce_sum(t);
  FAIL() << "the all-reduce with a dead peer returned";
}

}  // namespace qtrain

#include "dist/binding.h"

namespace qtrain {

TEST(MpiBinding, LocalRanksGetTheirOwnCores) {
  Communicator& c = comm();
  std::string msg = bind_rank(c, Device::CPU, true);
  if (c.local_world() == 1) {
    EXPECT_NE(msg.find("not bound"), std::string::npos) << msg;
    return;
  }
#ifdef QTRAIN_HAS_HWLOC
  EXPECT_NE(msg.find("bound to core"), std::string::npos) << msg;
#endif
  EXPECT_NE(msg.find("OpenMP threads"), std::string::npos) << msg;
}

}  // namespace qtrain
