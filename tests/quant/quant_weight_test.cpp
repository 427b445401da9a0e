// Quantized base weights: products against the dense dequantized matrix
// (chunked and unchunked), and a QLoRA tiny-llama against peft on
// bitsandbytes-dequantized weights (tests/fixtures/quant/make_qlora_reference.py).
#include <nlohmann/json.hpp>

#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/quant_weight.h"
#include "models/safetensors.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

void check_against_dense(const BaseWeight& w, double fwd_tol = 1e-6) {
  int64_t n = 3;
  Tensor dense = w.dense_f32();
  Tensor x = randn({n, w.in_features()}, 11), dy = randn({n, w.out_features()}, 12);
  Tensor y = Tensor::empty({n, w.out_features()}, DType::F32), want_y = Tensor::empty({n, w.out_features()}, DType::F32);
  w.forward(y, x);
  gemm(want_y, x, dense, false, true);
  EXPECT_LT(norm_rel_err(y.to_vector(), want_y.to_vector()), fwd_tol);
  // backward_input, beta 0 then accumulating (beta 1)
  Tensor dx = randn({n, w.in_features()}, 13), want_dx = Tensor::empty({n, w.in_features()}, DType::F32);
  w.backward_input(dx, dy, 0.f);
  gemm(want_dx, dy, dense, false, false);
  EXPECT_LT(norm_rel_err(dx.to_vector(), want_dx.to_vector()), 1e-6);
  w.backward_input(dx, dy, 1.f);
  gemm(want_dx, dy, dense, false, false, 1.f, 1.f);
  EXPECT_LT(norm_rel_err(dx.to_vector(), want_dx.to_vector()), 1e-6);
}

}  // namespace

TEST(QuantWeight, Nf4SmallIsCloseToOriginal) {
  Tensor w = randn({48, 80}, 3, 0.02f);
  Nf4Weight q(w, true);
  check_against_dense(q);
  EXPECT_LT(norm_rel_err(q.dense_f32().to_vector(), w.to_vector()), 0.12);  // NF4 is ~10% rms error on normals
  EXPECT_LT(q.bytes(), size_t(48 * 80 / 2 + 48 * 80 / 64 * 2));
}

TEST(QuantWeight, ChunkedProductsMatchDense) {
  // > kChunkElems elements: two row chunks, odd `in` (rows start mid-byte)
  Tensor w = randn({2001, 2097}, 5, 0.02f);
  ASSERT_GT(w.numel(), DequantWeight::kChunkElems);
  check_against_dense(Nf4Weight(w, false));
  check_against_dense(Fp4Weight(w, true));
  check_against_dense(Int8Weight(w), 2e-2);  // LLM.int8 forward quantizes x too
}

TEST(QuantWeight, Int8OutlierColumnsRunInFullPrecision) {
  Tensor w = randn({64, 96}, 21, 0.05f), x = randn({5, 96}, 22);
  for (int64_t i = 0; i < 5; ++i) x.f32()[i * 96 + 7] = 40.f + float(i);  // an outlier feature
  auto product = [&](float threshold) {
    Int8Weight q(w, threshold);
    Tensor y = Tensor::empty({5, 64}, DType::F32);
    q.forward(y, x);
    return y.to_vector();
  };
  Tensor want = Tensor::empty({5, 64}, DType::F32);
  gemm(want, x, Int8Weight(w).dense_f32(), false, true);
  // a tiny threshold: every column is an outlier, the product is the dense one
  EXPECT_LT(norm_rel_err(product(1e-30f), want.to_vector()), 1e-6);
  double with = norm_rel_err(product(6.f), want.to_vector()), without = norm_rel_err(product(1e30f), want.to_vector());
  EXPECT_LT(with, 1.5e-2);
  EXPECT_GT(without, 3 * with);  // quantizing x with the outlier in its row absmax loses the rest
  // threshold 0 turns the decomposition off, as bitsandbytes' threshold=0.0 does
  EXPECT_EQ(product(0.f), product(1e30f));
}

TEST(QuantWeight, QloraTinyLlamaMatchesPeftOnBitsandbytesWeights) {
  const Ref r = load_ref("tiny-llama");
  double want = fixture_json("quant/tiny-llama-qlora-ref.json")["qlora_loss"].get<double>();
  LoadedModel lm = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture("tiny-llama-lora"));
  auto m = build_with_adapter(lm, a, "qlora");
  LossSum s = m->forward(r.batch(), 1.f / 30.f);
  ASSERT_EQ(s.count, 30);
  EXPECT_NEAR(s.sum / s.count, want, 1e-4 * want);
  m->backward();
  expect_grads_match_peft(*m, SafetensorsFile(fixture("quant/tiny-llama-qlora-grads.safetensors")), 1e-3);
  // export --merge: dequant(W) + s*B*A, W quantized as the model's base
  for (auto& [name, t] : m->hf_state_dict(true)) {
    if (name != "model.layers.0.self_attn.q_proj.weight") continue;
    Tensor w = lm.weights->load_f32(name);
    Tensor want = Nf4Weight(w, true).dense_f32();
    for (Linear* lin : m->linears())
      if (lin->name() + ".weight" == name) add_inplace(want, lin->adapter()->delta_f32(lin->base()));
    EXPECT_EQ(max_rel_err(t.to_vector(), want.to_vector()), 0.0);
    EXPECT_GT(norm_rel_err(t.to_vector(), w.to_vector()), 1e-3);
  }
  // the frozen block weights really are quantized, the logical count is kept
  auto dense = Model::create(lm.config, *lm.weights, adapter_options(a, "lora"));
  EXPECT_EQ(m->total_params(), dense->total_params());
}
