// The captured decode step (models/decode_graph.cpp): the kernels that take a
// device position read it at run time, and a replayed graph gives the eager
// steps' logits at every later position, after a cache rollback (chat reuse)
// and after a recapture forced by a moved buffer.
#include <algorithm>

#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/kernel_profile.h"
#include "kernels/quant_matmul.h"
#include "kernels/rope.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/hf_fixture.h"
#include "models/synthetic_model.h"

namespace qtrain::testing {
namespace {

Tensor device_int(int32_t v) { return Tensor::wrap(&v, {1}, DType::I32).to(Device::CUDA); }

// `first` is deliberately wrong (1): the kernels must use the device value.
TEST(CudaDecodeKernels, ReadTheDevicePosition) {
  QT_SKIP_WITHOUT_GPU();
  const int pos = 5, cap = 9;
  Tensor p = device_int(pos);
  const SeqPos dev(1, p.i32(), cap);
  {
    Pair cache = pair(Tensor::zeros({2, cap, 3, 8}, DType::F32), DType::BF16);
    Pair src = randn_pair({2, 1, 3, 8}, 1, DType::BF16);
    kv_cache_write(cache.cpu, src.cpu, pos);
    kv_cache_write(cache.gpu, src.gpu, dev);
    EXPECT_EQ(vec(cache.gpu), vec(cache.cpu));
  }
  {
    Pair q = randn_pair({1, 1, 6, 16}, 2, DType::BF16);
    Pair kc = randn_pair({1, cap, 2, 16}, 3, DType::BF16), vc = randn_pair({1, cap, 2, 16}, 4, DType::BF16);
    Pair out = pair(Tensor::zeros({1, 1, 6, 16}, DType::F32), DType::BF16);
    attention_cached(out.cpu, q.cpu, kc.cpu, vc.cpu, pos);
    attention_cached(out.gpu, q.gpu, kc.gpu, vc.gpu, dev);
    EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  }
  {
    Pair x = randn_pair({1, 1, 4, 32}, 5, DType::BF16);
    rope_forward(x.cpu, 10000.f, pos);
    rope_forward(x.gpu, 10000.f, dev);
    EXPECT_CLOSE(x.gpu, x.cpu, kBf16Tol);
  }
  {
    Pair wte = randn_pair({11, 8}, 6, DType::BF16), wpe = randn_pair({cap, 8}, 7, DType::BF16);
    Pair out = pair(Tensor::zeros({1, 8}, DType::F32), DType::BF16);
    int32_t id = 3;
    Tensor ids = Tensor::wrap(&id, {1}, DType::I32);
    embedding_forward(out.cpu, ids, wte.cpu, wpe.cpu, 1, pos);
    embedding_forward(out.gpu, ids.to(Device::CUDA), wte.gpu, wpe.gpu, 1, dev);
    EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  }
}

class GpuDecodeGraph : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(GpuDecodeGraph, ReplaysEqualEagerSteps) {
  QT_SKIP_WITHOUT_GPU();
  auto [name, method] = GetParam();
  LoadedModel lm = load_hf_model_dir(fixture(name));
  ModelOptions opt;
  opt.device = Device::CUDA;
  opt.method = method;
  auto m = Model::create(lm.config, *lm.weights, opt);
  uint64_t seed = 11;
  for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));
  const int V = lm.config.vocab_size, prompt = 3, steps = 8;
  std::vector<int32_t> ids;
  for (int i = 0; i < prompt + steps; ++i) ids.push_back(int32_t((i * 37 + 5) % V));
  // One run: prefill, then one token per step; each step's logits.
  auto run = [&](bool graphs, KvCache& c) {
    m->set_decode_graphs(graphs);
    std::vector<std::vector<float>> out;
    out.push_back(m->decode(ids.data(), 1, prompt, c).to_vector());
    for (int s = 0; s < steps; ++s) out.push_back(m->decode(&ids[size_t(prompt + s)], 1, 1, c).to_vector());
    return out;
  };
  KvCache ce = m->new_kv_cache(1, prompt + steps), cg = m->new_kv_cache(1, prompt + steps);
  auto eager = run(false, ce);
  EXPECT_EQ(m->decode_graph_status(), "eager");
  auto graphed = run(true, cg);
  EXPECT_EQ(m->decode_graph_status(), "graph");
  // The same kernels with the same operands: equal up to reduction-order noise.
  for (size_t s = 0; s < eager.size(); ++s) EXPECT_LT(max_rel_err(graphed[s], eager[s], 1e-3), 1e-5) << "step " << s;
  // Roll back (a chat turn reusing a prefix) and replay steps 2..: same logits again.
  cg.len = prompt + 2;
  for (int s = 2; s < steps; ++s) {
    std::vector<float> lg = m->decode(&ids[size_t(prompt + s)], 1, 1, cg).to_vector();
    EXPECT_LT(max_rel_err(lg, eager[size_t(s) + 1], 1e-3), 1e-5) << "replay after rollback, step " << s;
  }
  // A moved buffer makes the graph stale: it is recaptured, and still right.
  cg.len = prompt + 2;
  cuda_bump_buffer_generation();
  std::vector<float> lg = m->decode(&ids[size_t(prompt + 2)], 1, 1, cg).to_vector();
  EXPECT_EQ(m->decode_graph_status(), "graph");
  EXPECT_LT(max_rel_err(lg, eager[3], 1e-3), 1e-5);
}

// LLaMA-7B's layer shapes (two layers of random weights, an NF4 base) at batch 1, where the q+k+v and
// gate+up GEMVs make the norms in front of them (add_rmsnorm_matmul_4bit_shared) and, with no adapters,
// SwiGLU and RoPE + the cache append in their epilogues (add_rmsnorm_matmul_4bit_swiglu, _rope_kv): the
// steps' logits, eager and replayed, equal those with the norms, SwiGLU and RoPE as their own kernels
// bit for bit; a step runs one norm kernel (the final one) where it ran five, and no SwiGLU or RoPE
// kernel where it ran two of each. With a LoRA on every projection too (it reads the normed rows, as
// the GEMV's first block stores them; SwiGLU and RoPE then stay kernels of their own, after the adapters).
TEST(GpuDecodeNormInsideGemv, EqualsTheNormsOwnKernels) {
  QT_SKIP_WITHOUT_GPU();
  for (int lora_r : {0, 8}) {
    SCOPED_TRACE("LoRA r " + std::to_string(lora_r));
    LoadedModel lm = load_synthetic_model("random:llama-7b");
    lm.config.n_layer = 2;
    ModelOptions opt;
    opt.device = Device::CUDA;
    opt.method = "qlora";
    opt.lora.r = std::max(lora_r, 1);
    if (lora_r == 0) opt.targets = {};
    auto m = Model::create(lm.config, *lm.weights, opt);
    uint64_t seed = 3;
    for (auto& p : m->params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));  // B != 0
    const int V = lm.config.vocab_size, prompt = 4, steps = 4;
    std::vector<int32_t> ids;
    for (int i = 0; i < prompt + steps; ++i) ids.push_back(int32_t((i * 7919 + 11) % V));
    struct Calls {
      int64_t norm = -1, swiglu = -1, rope = -1;
    };
    const bool rope_default = gemv4_rope_inside();  // off unless QT_GEMV4_ROPE=1; checked here either way
    auto run = [&](bool folds, bool graphs, Calls* calls) {
      set_gemv4_norm_inside(folds);
      set_gemv4_swiglu_inside(folds);
      set_gemv4_rope_inside(folds);
      m->set_decode_graphs(graphs);
      KvCache c = m->new_kv_cache(1, prompt + steps);
      std::vector<std::vector<float>> out;
      out.push_back(m->decode(ids.data(), 1, prompt, c).to_vector());
      const bool profile = calls && kernel_profile_start().empty();
      for (int s = 0; s < steps; ++s) out.push_back(m->decode(&ids[size_t(prompt + s)], 1, 1, c).to_vector());
      if (profile) {
        cuda_sync();
        *calls = Calls{0, 0, 0};
        for (const KernelTime& k : kernel_profile_stop()) {
          if (k.klass == "norm") calls->norm += k.calls;
          if (k.name.find("Swiglu") != std::string::npos) calls->swiglu += k.calls;
          if (k.name.find("rope_qkv") != std::string::npos) calls->rope += k.calls;  // not the table's build
        }
      }
      set_gemv4_norm_inside(true);
      set_gemv4_swiglu_inside(true);
      set_gemv4_rope_inside(rope_default);
      return out;
    };
    Calls own, folded;
    const auto ref = run(false, false, &own);
    const auto eager = run(true, false, &folded);
    const auto graphed = run(true, true, nullptr);
    for (size_t s = 0; s < ref.size(); ++s) {
      EXPECT_EQ(eager[s], ref[s]) << "step " << s;
      EXPECT_LT(max_rel_err(graphed[s], ref[s], 1e-3), 1e-5) << "replayed step " << s;  // as ReplaysEqualEagerSteps
    }
    if (own.norm >= 0) {  // CUPTI present
      EXPECT_EQ(own.norm, 5 * steps);
      EXPECT_EQ(folded.norm, steps);
      EXPECT_EQ(own.swiglu, 2 * steps);
      EXPECT_EQ(folded.swiglu, lora_r ? 2 * steps : 0);
      EXPECT_EQ(own.rope, 2 * steps);
      EXPECT_EQ(folded.rope, lora_r ? 2 * steps : 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GpuDecodeGraph,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-gpt2"),
                                            ::testing::Values("lora", "qlora")),
                         ModelMethodName());

}  // namespace
}  // namespace qtrain::testing
