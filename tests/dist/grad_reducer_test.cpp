// GradReducer bucketing and timing, with a communicator that records what it
// is asked to reduce (as if it had one identical peer: sums double).
#include "dist/grad_reducer.h"

#include <chrono>
#include <thread>

#include "dist/bootstrap.h"
#include "tests/test_util.h"

namespace qtrain {

namespace {

struct RecordingCommunicator : Communicator {
  const float* base = nullptr;
  std::vector<std::pair<int64_t, int64_t>> started;  // (begin, end) element ranges
  int waits = 0;
  int rank() const override { return 0; }
  int world() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_world() const override { return 2; }
  void allreduce_sum(Tensor t) override {
    for (float* p = t.f32(); p < t.f32() + t.numel(); ++p) *p *= 2.f;
  }
  void allreduce_sum(double* v, int n) override {}
  void broadcast(Tensor, int) override {}
  void barrier() override {}
  void start_allreduce_sum(Tensor t) override {
    started.emplace_back(t.f32() - base, t.f32() - base + t.numel());
    allreduce_sum(t);
  }
  void wait_allreduces() override { ++waits; }
  void abort(const std::string&, int) override {}
  std::string name() const override { return "recording"; }
};

// A LLaMA-shaped parameter list: embeddings, 3 blocks of 2 LoRA-sized
// tensors each, final norm and an untied head.
ParamSet make_params() {
  ParamSet ps;
  ps.declare("embed", {8, 4}, false, -1);  // 32 floats
  for (int l = 0; l < 3; ++l) {
    ps.declare("l" + std::to_string(l) + ".a", {2, 5}, true, l);  // 10 floats, padded to 16
    ps.declare("l" + std::to_string(l) + ".b", {3, 2}, true, l);  // 6 floats, padded to 16
  }
  ps.declare("norm", {4}, false, -1);     // padded to 16
  ps.declare("head", {4, 8}, false, -1);  // 32 floats
  ps.allocate(Device::CPU);
  return ps;
}

}  // namespace

TEST(GradReducer, BucketsTileTheBufferInReverseOrderWithWholeParams) {
  ParamSet ps = make_params();
  RecordingCommunicator comm;
  GradReducer r(comm, ps, 32 * sizeof(float));  // 32-float buckets
  const auto& b = r.buckets();
  // From the end: head (32) | norm+l2.b (16+16) | l2.a+l1.b | l1.a+l0.b | l0.a + embed (16+32)
  ASSERT_EQ(b.size(), 5u);
  const int64_t total = ps.grads().numel();
  EXPECT_EQ(b[0].end, total);
  for (size_t i = 0; i + 1 < b.size(); ++i) EXPECT_EQ(b[i].begin, b[i + 1].end) << i;
  EXPECT_EQ(b.back().begin, 0);
  EXPECT_EQ(b[0].first_param, 8u);
  EXPECT_EQ(b[0].last_param, 8u);
  EXPECT_EQ(b[1].first_param, 6u);  // l2.b, norm
  EXPECT_EQ(b[1].ready_layer, 2);
  EXPECT_EQ(b[4].first_param, 0u);
  EXPECT_EQ(b[4].ready_layer, -1);  // holds the embeddings: final only at the end
  for (const auto& bk : b) EXPECT_EQ(ps.params()[bk.first_param].offset, bk.begin);
}

TEST(GradReducer, StartsEachBucketWhenItsLayersAreDone) {
  ParamSet ps = make_params();
  RecordingCommunicator comm;
  comm.base = ps.grads().f32();
  GradReducer r(comm, ps, 32 * sizeof(float));
  auto g = testing::randn({ps.grads().numel()}, 3);
  ps.grads().copy_from(g);
  const auto& b = r.buckets();
  r.layer_done(2);  // head bucket and norm+l2.b
  ASSERT_EQ(comm.started.size(), 2u);
  EXPECT_EQ(comm.started[0], std::make_pair(b[0].begin, b[0].end));
  EXPECT_EQ(comm.started[1], std::make_pair(b[1].begin, b[1].end));
  r.layer_done(1);  // l2.a + l1.b
  EXPECT_EQ(comm.started.size(), 3u);
  r.layer_done(0);  // l1.a + l0.b; the last bucket waits for the embeddings
  EXPECT_EQ(comm.started.size(), 4u);
  EXPECT_EQ(comm.waits, 0);
  r.finish();
  EXPECT_EQ(comm.started.size(), 5u);
  EXPECT_EQ(comm.waits, 1);
  // Every element reduced exactly once.
  auto out = ps.grads().to_vector();
  auto in = g.to_vector();
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], 2.f * in[i]) << i;
  // The next step starts afresh.
  comm.started.clear();
  r.layer_done(2);
  EXPECT_EQ(comm.started.size(), 2u);
  r.finish();
  EXPECT_EQ(comm.started.size(), 5u);
}

TEST(GradReducer, DisabledMicroStepsDoNotCommunicate) {
  ParamSet ps = make_params();
  RecordingCommunicator comm;
  comm.base = ps.grads().f32();
  GradReducer r(comm, ps, 1 << 20);  // one bucket
  ASSERT_EQ(r.buckets().size(), 1u);
  r.set_enabled(false);
  for (int l = 2; l >= 0; --l) r.layer_done(l);
  r.finish();
  EXPECT_TRUE(comm.started.empty());
  EXPECT_EQ(comm.waits, 0);
  r.set_enabled(true);
  r.layer_done(2);
  EXPECT_TRUE(comm.started.empty());  // the single bucket holds the embeddings
  r.finish();
  EXPECT_EQ(comm.started.size(), 1u);
}

TEST(GradReducer, ZeroBucketSizeGivesOneBucketPerParam) {
  ParamSet ps = make_params();
  RecordingCommunicator comm;
  GradReducer r(comm, ps, 0);
  EXPECT_EQ(r.buckets().size(), ps.params().size());
}

TEST(GradReducer, SingleRankIsANoOp) {
  ParamSet ps = make_params();
  SingleCommunicator comm;
  GradReducer r(comm, ps, 64);
  ps.grads().copy_from(testing::randn({ps.grads().numel()}, 5));
  auto before = ps.grads().to_vector();
  for (int l = 2; l >= 0; --l) r.layer_done(l);
  r.finish();
  EXPECT_EQ(ps.grads().to_vector(), before);
}

TEST(Bootstrap, WithoutLauncherIsSingleAndMakesNoMpiCalls) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK"))
    GTEST_SKIP() << "running under an MPI launcher";
  auto comm = make_communicator(Device::CPU, 10);
  EXPECT_EQ(comm->name(), "single");
  EXPECT_EQ(comm->world(), 1);
  EXPECT_EQ(comm->rank(), 0);
}

}  // namespace qtrain

namespace qtrain {

// A synchronous transport's time shows up as exposed communication.
TEST(GradReducer, CountsSynchronousReductionAsExposed) {
  struct SlowCommunicator : SingleCommunicator {
    int world() const override { return 2; }
    void start_allreduce_sum(Tensor) override { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }
  } comm;
  ParamSet ps;
  ps.declare("w", {4}, true, 0);
  ps.allocate(Device::CPU);
  GradReducer r(comm, ps, 0);
  r.layer_done(0);
  r.finish();
  EXPECT_GE(r.exposed_seconds(), 0.019);
  EXPECT_LT(r.wait_seconds(), 0.019);
}

}  // namespace qtrain
