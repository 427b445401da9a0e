// The LoRA path of decode rows for a set of adapters that read one x
// (kernels/lora_decode.h) against its CPU reference: the delta alone (y from
// zero) and added to what y held, on sets of one to three adapters of
// different ranks and widths, M 1..16; and the model's decode through it.
#include "kernels/lora_decode.h"
#include "models/model.h"
#include "models/synthetic_model.h"
#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaLoraDecode, SetsMatchTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Part {
    int64_t r, out;
  };
  const std::vector<std::vector<Part>> sets = {{{16, 576}, {8, 192}, {64, 192}}, {{16, 1536}, {16, 1536}}, {{1, 37}}};
  uint64_t seed = 1;
  // in: one 1024-element chunk of the down kernel, partial; 2 whole chunks and 8 more (its chunks'
  // partial sums meet in the up kernel)
  for (int64_t in : {576, 2056})
  for (const auto& set : sets)
    for (int64_t M : {int64_t(1), int64_t(3), int64_t(5), int64_t(8), kLoraDecodeMaxRows})  // each instance
      for (bool from_zero : {true, false}) {
        SCOPED_TRACE(std::to_string(set.size()) + " adapters, in " + std::to_string(in) + ", M " + std::to_string(M) +
                     (from_zero ? ", y = 0" : ""));
        Pair x = randn_pair({M, in}, seed++, DType::BF16);
        std::vector<Pair> a, b, y;
        std::vector<float> s;
        for (const Part& p : set) {
          a.push_back(randn_pair({p.r, in}, seed++, DType::BF16, 0.05f));
          b.push_back(randn_pair({p.out, p.r}, seed++, DType::BF16, 0.05f));
          y.push_back(from_zero ? pair(Tensor::zeros({M, p.out}, DType::F32), DType::BF16)
                                : randn_pair({M, p.out}, seed++, DType::BF16));
          s.push_back(2.f / float(s.size() + 1));
        }
        std::vector<Tensor> yc, yg, ac, ag, bc, bg;
        for (size_t i = 0; i < set.size(); ++i) {
          yc.push_back(y[i].cpu), yg.push_back(y[i].gpu), ac.push_back(a[i].cpu), ag.push_back(a[i].gpu);
          bc.push_back(b[i].cpu), bg.push_back(b[i].gpu);
        }
        ASSERT_TRUE(lora_decode_supported(x.gpu, ag, bg));
        lora_decode_shared(yc, x.cpu, ac, bc, s);
        lora_decode_shared(yg, x.gpu, ag, bg, s);
        for (size_t i = 0; i < set.size(); ++i) {
          SCOPED_TRACE("adapter " + std::to_string(i));
          EXPECT_CLOSE(yg[i], yc[i], kBf16Tol);
        }
      }
  // F32 factors (the masters, outside a decode step) are not the op's, nor more x rows than it
  // takes: the model falls back.
  const int64_t in = 576;
  Pair x = randn_pair({1, in}, 90, DType::BF16);
  EXPECT_FALSE(lora_decode_supported(x.gpu, {Tensor::empty({8, in}, DType::F32, Device::CUDA)},
                                     {Tensor::empty({16, 8}, DType::BF16, Device::CUDA)}));
  Pair x8 = randn_pair({kLoraDecodeMaxRows + 1, in}, 91, DType::BF16);
  EXPECT_FALSE(lora_decode_supported(x8.gpu, {Tensor::empty({8, in}, DType::BF16, Device::CUDA)},
                                     {Tensor::empty({16, 8}, DType::BF16, Device::CUDA)}));
}

// A LLaMA with plain LoRA (q/k/v, gate/up as sets; o and down alone) decodes on
// the GPU as on the CPU: the last step's logits.
TEST(CudaLoraDecode, ModelDecodeMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  std::vector<std::vector<float>> logits;
  for (Device dev : {Device::CPU, Device::CUDA}) {
    ModelOptions o;
    o.device = dev;
    o.method = "lora";
    auto m = Model::create(lm.config, *lm.weights, o);
    uint64_t seed = 3;
    for (auto& p : m->params().params())  // B != 0, so the adapters change the output
      if (p.name.find("lora_B") != std::string::npos) p.value.copy_from(randn(p.shape, seed++, 0.05f));
    std::vector<int32_t> ids = {5, 17, 3, 99, 42, 7};
    KvCache c = m->new_kv_cache(1, 8);
    m->decode(ids.data(), 1, 3, c);
    std::vector<float> last;
    for (int s = 3; s < 6; ++s) last = m->decode(&ids[size_t(s)], 1, 1, c).to_vector();
    logits.push_back(last);
  }
  EXPECT_LT(norm_rel_err(logits[1], logits[0]), 2e-2);
}

}  // namespace
}  // namespace qtrain::testing
