// Text generation on a Model's KV cache: the prompt in one decode call
// (prefill), then one call per new token, until a stop token, the token
// budget, or the model's last position. A Generator keeps its cache between
// calls, so the next turn of a chat runs only the tokens it has not seen.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "models/model.h"
#include "trainer/sampler.h"

namespace qtrain {

struct GenerateOptions {
  int max_new_tokens = 128;
  SamplingOptions sampling;
  std::vector<int32_t> stop_ids;  // generation ends on any of these; it is the last id of the output (as in HF)
};

enum class StopReason { StopToken, MaxNewTokens, Context };
const char* stop_reason_name(StopReason r);  // "stop-token" | "max-new-tokens" | "context"

struct GenerateResult {
  std::vector<int32_t> ids;  // the new tokens, a stop token included
  StopReason stop = StopReason::MaxNewTokens;
  int prompt_tokens = 0;     // the prompt's length
  int prefilled = 0;         // of those, the ones run now (the rest were in the cache)
  double prefill_ms = 0;     // the prefill call and the first token's sampling
  double decode_ms = 0;      // every later step: decode call + sampling
  int decode_steps = 0;      // one per new token after the first
};

class Generator {
 public:
  // Checks the options (flag names in the errors). The sampler's seed is
  // drawn from once per sampled token, across calls.
  Generator(Model& model, const GenerateOptions& o);

  // Generates after `prompt`; on_token(id) is called for each new token as
  // it is made, except a stop token. An empty prompt, or one longer than the
  // model's positions, is a BadInput Error.
  GenerateResult generate(std::span<const int32_t> prompt, const std::function<void(int32_t)>& on_token = {});

  // Generates after `prompt` untimed and unseen, then forgets it: the cache keeps its size (and, on the
  // GPU, its captured decode step) but holds no token, and the sampler is where it was, so the next
  // generate() runs the whole prompt and draws the tokens it would have drawn without this. What it
  // leaves behind is the one-time work of a first run (cuBLASLt plans, cuDNN graphs, kernels loaded
  // lazily, the decode graph's capture), which would otherwise land in the next run's timings.
  void warm_up(std::span<const int32_t> prompt);

  // The tokens whose keys/values are in the cache: a chat's history so far.
  const std::vector<int32_t>& cached_ids() const { return cached_; }

 private:
  // Makes room for `need` positions, keeping the cache when it is big enough;
  // returns how many leading prompt ids it holds already.
  size_t reuse_or_reset(std::span<const int32_t> prompt, int need);

  Model& model_;
  GenerateOptions o_;
  Sampler sampler_;
  KvCache cache_;
  std::vector<int32_t> cached_;  // ids at cache positions 0..cache_.len-1
};

// Shared by Generator and generate_batch (trainer/generate_batch.h):
// a BadInput Error unless 1 <= n <= the model's positions.
void check_prompt_length(int n, int max_pos);
// Positions a prompt of n tokens uses: every new token but the last is fed back.
int positions_needed(int n, const GenerateOptions& o, int max_pos);
// Records the sampled token `tok` in r and says whether generation ends with
// it: on a stop token, the token budget, or `fed` (positions in the cache)
// reaching `need`. on_token(tok) is called for every token but a stop token.
bool accept_token(GenerateResult& r, int32_t tok, const GenerateOptions& o, int fed, int need,
                  const std::function<void(int32_t)>& on_token);

// The ids an HF model directory declares as end of sequence: eos_token_id
// (an int or a list) of generation_config.json and config.json, in that
// order, without repeats. Empty for a file (GGUF) or a directory without them.
// Unreadable JSON is a BadInput Error naming the file.
std::vector<int32_t> hf_eos_ids(const std::string& model_dir);

}  // namespace qtrain
