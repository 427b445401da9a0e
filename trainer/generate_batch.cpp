#include "trainer/generate_batch.h"

#include <algorithm>
#include <chrono>
#include <climits>

#include "kernels/error.h"

namespace qtrain {

int BatchResult::new_tokens() const {
  int n = 0;
  for (const GenerateResult& r : rows) n += int(r.ids.size());
  return n;
}

BatchResult generate_batch(Model& model, const GenerateOptions& o, const std::vector<std::vector<int32_t>>& prompts,
                           const std::function<void(int row, int32_t id)>& on_token) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  if (o.max_new_tokens < 1)
    throw Error("--max-new-tokens must be at least 1, got " + std::to_string(o.max_new_tokens));
  const int B = int(prompts.size());
  if (B == 0) throw Error("no prompts to generate from");
  const int max_pos = model.config().max_pos, V = model.config().vocab_size;
  std::vector<int> need(size_t(B), 0);
  int shortest = INT_MAX, capacity = 0;
  for (int b = 0; b < B; ++b) {
    const int n = int(prompts[size_t(b)].size());
    try {
      check_prompt_length(n, max_pos);
    } catch (const Error& e) {
      throw Error("prompt " + std::to_string(b + 1) + " of the batch: " + e.what());
    }
    need[size_t(b)] = positions_needed(n, o, max_pos);
    shortest = std::min(shortest, n);
    capacity = std::max(capacity, need[size_t(b)]);
  }
  std::vector<Sampler> samplers(size_t(B), Sampler(o.sampling));
  BatchResult res;
  res.rows.resize(size_t(B));
  KvCache cache = model.new_kv_cache(B, capacity);

  std::vector<int32_t> prefill(size_t(B) * shortest), next(size_t(B), 0);
  for (int b = 0; b < B; ++b) {
    std::copy_n(prompts[size_t(b)].begin(), shortest, prefill.begin() + ptrdiff_t(b) * shortest);
    res.rows[size_t(b)].prompt_tokens = int(prompts[size_t(b)].size());
    res.rows[size_t(b)].prefilled = shortest;
  }
  std::vector<char> done(size_t(B), 0);
  // After a decode call: each running row's next input (a prompt token, or a
  // token sampled from its logits row); the number of rows still running.
  auto advance = [&](const Tensor& logits) {
    int running = 0;
    for (int b = 0; b < B; ++b) {
      if (done[size_t(b)]) continue;  // keeps feeding its last token
      const std::vector<int32_t>& p = prompts[size_t(b)];
      const int fed = cache.len;
      if (fed < int(p.size())) {
        next[size_t(b)] = p[size_t(fed)];
        ++running;
        continue;
      }
      const int32_t tok = samplers[size_t(b)].sample({logits.f32() + size_t(b) * size_t(V), size_t(V)});
      std::function<void(int32_t)> emit;
      if (on_token) emit = [&](int32_t id) { on_token(b, id); };
      done[size_t(b)] = accept_token(res.rows[size_t(b)], tok, o, fed, need[size_t(b)], emit);
      next[size_t(b)] = tok;
      running += !done[size_t(b)];
    }
    return running;
  };

  auto t0 = Clock::now();
  int running = advance(model.decode(prefill.data(), B, shortest, cache));
  res.prefill_ms = ms_since(t0);
  while (running > 0) {
    auto t = Clock::now();
    running = advance(model.decode(next.data(), B, 1, cache));
    res.decode_ms += ms_since(t);
    ++res.decode_steps;
  }
  for (GenerateResult& r : res.rows) r.decode_steps = int(r.ids.size()) - 1;
  return res;
}

}  // namespace qtrain
