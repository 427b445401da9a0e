// GPU collectives through make_communicator(CUDA): NCCL under mpirun, the
// single communicator without it. Run on a GPU machine as
//   mpirun -np N test_dist --gtest_filter='MpiNccl*'
// Skipped without a GPU.
#include "dist/bootstrap.h"
#include "dist/grad_reducer.h"
#include "tests/test_util.h"

namespace qtrain {

TEST(MpiNccl, AllreduceBroadcastAndReducerOnGpu) {
  QT_SKIP_WITHOUT_GPU();
  static std::unique_ptr<Communicator> c = make_communicator(Device::CUDA, 60);
#ifdef QTRAIN_HAS_NCCL
  if (c->world() > 1 || std::getenv("OMPI_COMM_WORLD_SIZE")) EXPECT_EQ(c->name(), "nccl");
#endif
  const int r = c->rank(), w = c->world();
  const int64_t n = 4099;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float((r + 1) * (i % 5));
  Tensor t = Tensor::from_vector(v, {n}, Device::CUDA);
  c->allreduce_sum(t);
  auto out = t.to_vector();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], float(w * (w + 1) / 2 * (i % 5))) << i;

  Tensor b = Tensor::from_vector({float(r), 3.f}, {2}, Device::CUDA);
  c->broadcast(b, w - 1);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{float(w - 1), 3.f}));

  ParamSet ps;
  for (int l = 0; l < 3; ++l) ps.declare("l" + std::to_string(l) + ".w", {64, 33}, true, l);
  ps.allocate(Device::CUDA);
  auto grads_of = [&](int rank) { return testing::randn({ps.grads().numel()}, 40 + uint64_t(rank)); };
  ps.grads().copy_from(grads_of(r).to(Device::CUDA));
  GradReducer reducer(*c, ps, 64 * 33 * 4);
  for (int l = 2; l >= 0; --l) reducer.layer_done(l);
  reducer.finish();
  std::vector<double> want(size_t(ps.grads().numel()), 0.0);
  for (int k = 0; k < w; ++k) {
    auto g = grads_of(k).to_vector();
    for (size_t i = 0; i < want.size(); ++i) want[i] += g[i];
  }
  auto got = ps.grads().to_vector();
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << i;
  c->barrier();
}

}  // namespace qtrain
