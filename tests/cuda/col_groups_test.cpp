// The column-group ops (Q-BLoRA's pool and repeat-interleave) on the GPU
// against their CPU references, and a Q-BLoRA model's loss and gradients on
// the GPU against the CPU (whose test pins it to the PyTorch fixture).
#include "kernels/col_groups.h"

#include "models/model.h"
#include "models/peft_io.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

TEST(CudaColGroups, SumAndRepeatMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::BF16, DType::F32})
    for (int64_t k : {1, 2, 8}) {
      const int64_t N = 301, W = 64 * k;
      Pair x = randn_pair({N, W}, 1, dt), p = randn_pair({N, W / k}, 2, dt), y = randn_pair({N, W}, 3, dt);
      sum_col_groups(p.cpu, x.cpu, k, 1.f / float(k));
      sum_col_groups(p.gpu, x.gpu, k, 1.f / float(k));
      EXPECT_CLOSE(p.gpu, p.cpu, tol_for(dt));
      Pair q = randn_pair({N, W / k}, 4, dt);
      add_repeat_cols(y.cpu, q.cpu, k, 0.5f);
      add_repeat_cols(y.gpu, q.gpu, k, 0.5f);
      EXPECT_CLOSE(y.gpu, y.cpu, tol_for(dt));
    }
}

TEST(CudaColGroups, QBloraModelMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  Ref r = load_ref("tiny-llama");
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-qblora"));
  auto run = [&](Device dev, const std::string& method) {
    auto m = Model::create(lm.config, *lm.weights, adapter_options(a, method, dev));
    apply_peft_adapter(*m, a);
    return train_step_grads(*m, r);
  };
  for (const char* method : {"lora", "qblora"}) {  // dense and NF4 bases
    LossAndGrads c = run(Device::CPU, method), g = run(Device::CUDA, method);
    EXPECT_NEAR(g.loss, c.loss, 2e-2 * c.loss) << method;
    EXPECT_LT(norm_rel_err(g.grads, c.grads), 5e-2) << method;
  }
}

}  // namespace
}  // namespace qtrain::testing
