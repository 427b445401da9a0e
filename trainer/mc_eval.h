// Multiple-choice evaluation (MMLU-style k-shot) as the standard harnesses
// score it: each choice's score is the log-likelihood of its letter token
// (" A", " B", ...) right after the prompt's final "Answer:", and the
// prediction is the best-scoring letter. Questions are shared out over ranks.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "dist/communicator.h"
#include "models/model.h"
#include "trainer/mc_prompt.h"

namespace qtrain {

struct McOptions {
  int shots = 5;
  int max_tokens = 2048;        // prompt length limit (--seq-len, at most the model's positions)
  int batch_size = 8;           // prompts per forward (fewer when their logits would pass logits_budget)
  // Bytes of F32 logits (every position of every prompt) one forward may
  // return; a prompt over it alone runs as a KV-cache prefill (last position only).
  int64_t logits_budget = int64_t(1) << 30;
};

struct McScore {
  std::vector<double> loglik;  // per choice: log p(" A" | prompt), ...
  int pred = 0;                // argmax of loglik (the first on a tie)
  int shots = 0;               // shots in its prompt
  bool cut = false;            // prompt cut from the left (too long without shots)
};

struct McResult {
  std::vector<McScore> scores;  // one per McSet::questions entry, on every rank
  int64_t n = 0, correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> subjects;  // subject -> (n, correct)
  int64_t shortened = 0;      // prompts that lost shots to fit max_tokens
  int64_t shots_dropped = 0;  // shots those prompts lost
  int64_t cut = 0;            // prompts longer than max_tokens even without shots (kept: their last tokens)
  std::vector<std::string> short_dev;  // subjects with fewer dev examples than the shots asked
  nlohmann::ordered_json to_json(const McOptions& o) const;  // the JSON line `qtrain eval --task mc` prints
};

McResult evaluate_mc(Model& model, const Tokenizer& tok, const McSet& set, const McOptions& o, Communicator& comm);

}  // namespace qtrain
