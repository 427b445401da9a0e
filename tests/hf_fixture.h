// The HF reference fixtures' batch (tests/fixtures/<model>-ref.json), shared by
// the CPU reference tests and the GPU model tests: input_ids [B,T] with HF
// labels = input_ids, so position t predicts token t+1 and the last predicts nothing.
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/merged_model.h"
#include "models/model.h"
#include "models/peft_io.h"
#include "models/peft_options.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

namespace qtrain::testing {

struct Ref {
  nlohmann::json j;
  std::vector<int32_t> ids, targets;
  int B = 0, T = 0;
  TokenBatch batch() const { return {B, T, ids.data(), targets.data()}; }
};

inline Ref load_ref(const std::string& model) {
  Ref r;
  r.j = fixture_json(model + "-ref.json");
  auto& ids = r.j["input_ids"];
  r.B = int(ids.size());
  r.T = int(ids[0].size());
  for (auto& row : ids)
    for (int t = 0; t < r.T; ++t) r.ids.push_back(row[size_t(t)].get<int32_t>());
  r.targets.resize(r.ids.size());
  for (int b = 0; b < r.B; ++b)
    for (int t = 0; t < r.T; ++t) r.targets[size_t(b * r.T + t)] = t + 1 < r.T ? r.ids[size_t(b * r.T + t + 1)] : -100;
  return r;
}

// One training forward + backward of a fixture model on its reference batch, with
// or without gradient checkpointing: the loss, then every trainable gradient
// (flattened, in parameter order). LoRA runs with dropout, so recomputation must
// reuse the same masks. Used by the CPU and GPU gradient-checkpointing tests.
struct LossAndGrads {
  double loss = 0;
  std::vector<float> grads;
};

// One training step of m on the reference batch: the mean loss and every trainable gradient.
inline LossAndGrads train_step_grads(Model& m, const Ref& r) {
  m.params().zero_grads();
  LossAndGrads out;
  LossSum s = m.forward(r.batch(), float(1.0 / double(r.B * (r.T - 1))));
  m.backward();
  out.loss = s.sum / double(s.count);
  for (auto& p : m.params().params()) {
    auto g = p.grad.to_vector();
    out.grads.insert(out.grads.end(), g.begin(), g.end());
  }
  return out;
}

// Options that build a model for a stored adapter (its type, options and modules), on `method`'s base.
inline ModelOptions adapter_options(const PeftAdapter& a, const std::string& method = "lora", Device dev = Device::CPU) {
  ModelOptions opt;
  opt.device = dev;
  opt.method = method;
  return with_adapter_options(opt, a);
}

// A model holding a stored adapter on `method`'s base.
inline std::unique_ptr<Model> build_with_adapter(const LoadedModel& lm, const PeftAdapter& a,
                                                 const std::string& method = "lora") {
  auto m = Model::create(lm.config, *lm.weights, adapter_options(a, method));
  apply_peft_adapter(*m, a);
  return m;
}

// The mean loss on the reference batch; with backward, every gradient too (zeroed first).
inline double ref_mean_loss(Model& m, const Ref& r, bool backward = false) {
  m.params().zero_grads();
  LossSum s = m.forward(r.batch(), backward ? float(1.0 / double(r.B * (r.T - 1))) : 0.f);
  if (backward) m.backward();
  return s.sum / double(s.count);
}

// Every gradient of m against peft's saved ones, each within tol relative
// (norm_rel_err): grads holds one per trainable of m, named
// "base_model.model.<name>" behind prefix (a file may hold several runs).
inline void expect_grads_match_peft(Model& m, const SafetensorsFile& grads, double tol, const std::string& prefix = "") {
  const std::string names = prefix + "base_model.model.";
  size_t n = 0;
  for (auto& e : grads.entries()) n += e.name.rfind(names, 0) == 0;
  ASSERT_EQ(n, m.params().params().size()) << prefix;
  for (auto& p : m.params().params())
    EXPECT_LT(norm_rel_err(p.grad.to_vector(), grads.load_f32(names + p.name).to_vector()), tol)
        << prefix << p.name;
}

// m (a fixture adapter loaded) against a reference script's numbers: the mean
// loss (want["loss"]), every adapter gradient (grads_file, under peft's saved
// names) and the loss after merging (want["merged_loss"]), within tol relative.
inline void expect_adapter_matches_reference(Model& m, const Ref& r, const nlohmann::json& want,
                                             const std::string& grads_file, double tol = 1e-4) {
  const LossAndGrads lg = train_step_grads(m, r);
  EXPECT_NEAR(lg.loss, want["loss"].get<double>(), tol * want["loss"].get<double>());
  expect_grads_match_peft(m, SafetensorsFile(grads_file), tol);
  auto merged = merge_adapters_into_base(m, ModelOptions{.targets = {}});
  LossSum s = merged->forward(r.batch(), 0.f);
  EXPECT_NEAR(s.sum / double(s.count), want["merged_loss"].get<double>(), tol * want["merged_loss"].get<double>());
}

// The options of the recompute tests: LoRA dropout on, so a recomputed layer must reuse the same masks.
inline ModelOptions recompute_test_options(const std::string& method, Device dev) {
  ModelOptions opt;
  opt.device = dev;
  opt.method = method;
  opt.lora.dropout = 0.1f;
  opt.seed = 7;
  return opt;
}

// Trainable values away from their start (LoRA's B = 0 makes A's gradient
// ignore its input), so every gradient reads the activations it is given.
inline void randomize_trainable(Model& m) {
  uint64_t seed = 11;
  for (auto& p : m.params().params()) p.value.copy_from(randn(p.shape, seed++, 0.05f));
}

// ... with every layer recomputed (ckpt), or the first `recompute` layers
// recomputed and the next `pointwise` keeping only their GEMM outputs.
inline LossAndGrads loss_and_grads(const std::string& model, const std::string& method, Device dev, bool ckpt,
                                   int recompute = 0, int pointwise = 0) {
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  ModelOptions opt = recompute_test_options(method, dev);
  opt.grad_checkpoint = ckpt;
  opt.recompute_layers = recompute;
  opt.pointwise_layers = pointwise;
  auto m = Model::create(lm.config, *lm.weights, opt);
  return train_step_grads(*m, r);
}

}  // namespace qtrain::testing

namespace qtrain::testing {

// A fixture model's logits at every position of its reference batch, from the
// full forward and from incremental decoding (the first `prefill` tokens in one
// call, then one token per call): the two [B*T, V] logit sets, for the CPU and
// GPU decode-equivalence tests. The adapter's tensors are randomised so that
// it changes the output.
struct DecodeVsForward {
  std::vector<float> full, decoded;
};

inline DecodeVsForward decode_vs_forward(const std::string& model, const std::string& method, Device dev,
                                         int prefill) {
  Ref r = load_ref(model);
  LoadedModel lm = load_hf_model_dir(fixture(model));
  ModelOptions opt;
  opt.device = dev;
  opt.method = method;
  auto m = Model::create(lm.config, *lm.weights, opt);
  randomize_trainable(*m);
  DecodeVsForward out;
  out.full = m->logits(r.batch()).to_vector();
  const int64_t V = lm.config.vocab_size;
  out.decoded.assign(out.full.size(), 0.f);
  KvCache cache = m->new_kv_cache(r.B, r.T);
  auto run = [&](int t0, int n) {
    std::vector<int32_t> ids;
    for (int b = 0; b < r.B; ++b)
      for (int t = t0; t < t0 + n; ++t) ids.push_back(r.ids[size_t(b * r.T + t)]);
    std::vector<float> lg = m->decode(ids.data(), r.B, n, cache).to_vector();
    for (int b = 0; b < r.B; ++b)
      std::copy(lg.begin() + b * V, lg.begin() + (b + 1) * V, out.decoded.begin() + (int64_t(b) * r.T + t0 + n - 1) * V);
  };
  run(0, prefill);
  for (int t = prefill; t < r.T; ++t) run(t, 1);
  // Positions inside the prefill produce no logits of their own: copy the full forward's so only real ones compare.
  for (int b = 0; b < r.B; ++b)
    for (int t = 0; t + 1 < prefill; ++t)
      std::copy(out.full.begin() + (int64_t(b) * r.T + t) * V, out.full.begin() + (int64_t(b) * r.T + t + 1) * V,
                out.decoded.begin() + (int64_t(b) * r.T + t) * V);
  return out;
}

}  // namespace qtrain::testing
