// Several prompts generated together in one KV cache of B rows: each step is
// one batched decode call, and at small B a GPU step costs about what a
// one-row step does (decode reads every weight once per step whatever B is).
//
// The rows share the cache's positions (KvCache has one length for all rows),
// so prompts of different lengths run as Meta's llama reference generate runs
// them: the first `shortest` tokens of every prompt go in one prefill call;
// after that each step feeds a row its next prompt token while it has one
// (those logits are not sampled) and its last sampled token after. Every row
// sees exactly its own tokens at its own positions, with no padding and no
// mask, so it generates what the prompt alone does (greedy, and sampled too:
// each row has its own sampler seeded as a lone run's). A prompt longer than
// the batch's shortest costs one step per extra token: batch prompts of
// similar length. A row that has stopped (a stop token, its budget, the
// model's positions) keeps feeding its last token, its logits ignored, until
// every row has stopped.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "trainer/generate.h"

namespace qtrain {

struct BatchResult {
  // Per prompt, in order: ids and stop as Generator gives them; prefilled is
  // the tokens of it run by the prefill call and decode_steps its sampled
  // tokens after the first. Timings are the batch's, below.
  std::vector<GenerateResult> rows;
  double prefill_ms = 0;  // the prefill call and the first sampling
  double decode_ms = 0;   // every later step: one batched decode call + sampling
  int decode_steps = 0;
  int new_tokens() const;  // over every row, stop tokens included
};

// Generates after each prompt (B = prompts.size() rows). on_token(row, id) is
// called for each new token of a row as it is made, except a stop token. An
// empty prompt, or one longer than the model's positions, is a BadInput Error
// naming its index.
BatchResult generate_batch(Model& model, const GenerateOptions& o, const std::vector<std::vector<int32_t>>& prompts,
                           const std::function<void(int row, int32_t id)>& on_token = {});

}  // namespace qtrain
