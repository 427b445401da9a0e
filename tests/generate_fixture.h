// The greedy generation references (tests/fixtures/generate-ref.json, made by
// make_generate_fixtures.py), shared by the CPU and GPU generation tests.
#pragma once
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/weight_source.h"
#include "tests/test_util.h"
#include "trainer/generate.h"

namespace qtrain::testing {

struct GreedyCase {
  std::string model, adapter;  // fixture directory names; adapter "" = the base alone
  std::vector<int32_t> prompt, new_ids;
  std::vector<double> margins;  // top-1 minus top-2 logit at each step
  struct Top {
    std::vector<int32_t> ids;  // the largest logits at a step, largest first
    std::vector<float> logits;
  };
  std::vector<Top> top;  // per step
  int max_new_tokens = 0;
  int32_t eos = -1;
  bool stopped_on_eos = false;
  std::string label() const {
    return model + (adapter.empty() ? "" : " + " + adapter) + ", prompt of " + std::to_string(prompt.size());
  }
};

inline std::vector<GreedyCase> load_greedy_cases() {
  auto j = fixture_json("generate-ref.json");
  std::vector<GreedyCase> out;
  for (const auto& c : j["greedy"]) {
    GreedyCase g;
    g.model = c["model"];
    if (!c["adapter"].is_null()) g.adapter = c["adapter"];
    g.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    g.new_ids = c["new_ids"].get<std::vector<int32_t>>();
    g.margins = c["margins"].get<std::vector<double>>();
    for (const auto& t : c["top"]) g.top.push_back({t["ids"].get<std::vector<int32_t>>(), t["logits"].get<std::vector<float>>()});
    g.max_new_tokens = c["max_new_tokens"];
    g.eos = c["eos_token_id"];
    g.stopped_on_eos = c["stopped_on_eos"];
    out.push_back(std::move(g));
  }
  return out;
}

// Greedy decoding as the fixture's HF generate ran case c.
inline GenerateOptions greedy_options(const GreedyCase& c) {
  GenerateOptions o;
  o.max_new_tokens = c.max_new_tokens;
  o.sampling.temperature = 0;
  o.stop_ids = {c.eos};
  return o;
}

// The cases grouped by model and adapter (each group a batch of different
// prompts for one model), in the order the groups first appear.
inline std::vector<std::vector<const GreedyCase*>> cases_by_model(const std::vector<GreedyCase>& cases) {
  std::vector<std::vector<const GreedyCase*>> groups;
  for (const GreedyCase& c : cases) {
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& grp) {
      return grp.front()->model == c.model && grp.front()->adapter == c.adapter;
    });
    if (g == groups.end()) groups.push_back({&c});
    else g->push_back(&c);
  }
  return groups;
}

// A fixture model for inference: the dense base, with the adapter unmerged if given.
inline std::unique_ptr<Model> make_generate_model(const std::string& model, const std::string& adapter, Device dev) {
  LoadedModel lm = load_hf_model_dir(fixture(model));
  ModelOptions mo;
  mo.device = dev;
  mo.targets = {};
  std::unique_ptr<PeftAdapter> a;
  if (!adapter.empty()) {
    a = std::make_unique<PeftAdapter>(read_peft_adapter(fixture(adapter)));
    mo.lora = a->lora;
    mo.targets = a->modules;
  }
  auto m = Model::create(lm.config, *lm.weights, mo);
  if (a) apply_peft_adapter(*m, *a);
  return m;
}

}  // namespace qtrain::testing
