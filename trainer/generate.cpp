#include "trainer/generate.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace fs = std::filesystem;

namespace qtrain {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::StopToken: return "stop-token";
    case StopReason::MaxNewTokens: return "max-new-tokens";
    case StopReason::Context: return "context";
  }
  return "?";
}

Generator::Generator(Model& model, const GenerateOptions& o) : model_(model), o_(o), sampler_(o.sampling) {
  if (o.max_new_tokens < 1)
    throw Error("--max-new-tokens must be at least 1, got " + std::to_string(o.max_new_tokens));
}

void Generator::warm_up(std::span<const int32_t> prompt) {
  const Sampler before = sampler_;
  generate(prompt);
  sampler_ = before;
  cache_.len = 0;
  cached_.clear();
}

size_t Generator::reuse_or_reset(std::span<const int32_t> prompt, int need) {
  const int max_pos = model_.config().max_pos;
  if (cache_.capacity < need) {
    // Room for a few chat turns from the start, then geometric growth, so a
    // long chat reallocates (and re-prefills) rarely.
    int cap = std::max({need, 2 * cache_.capacity, 512});
    if (max_pos > 0) cap = std::min(cap, max_pos);
    cache_ = model_.new_kv_cache(1, cap);
    cached_.clear();
    return 0;
  }
  size_t common = 0;
  while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) ++common;
  if (common == prompt.size()) --common;  // the last prompt token must run: its logits pick the first new token
  // Positions from `common` on are overwritten by the next decode call.
  cache_.len = int(common);
  cached_.resize(common);
  return common;
}

void check_prompt_length(int n, int max_pos) {
  if (n == 0) throw Error("the prompt is empty: give some text (or ids) to continue");
  if (max_pos > 0 && n > max_pos)
    throw Error("the prompt has " + std::to_string(n) + " tokens, more than the model's " + std::to_string(max_pos) +
                " positions");
}

int positions_needed(int n, const GenerateOptions& o, int max_pos) {
  const int need = n + o.max_new_tokens - 1;
  return max_pos > 0 ? std::min(need, max_pos) : need;
}

bool accept_token(GenerateResult& r, int32_t tok, const GenerateOptions& o, int fed, int need,
                  const std::function<void(int32_t)>& on_token) {
  r.ids.push_back(tok);
  if (std::find(o.stop_ids.begin(), o.stop_ids.end(), tok) != o.stop_ids.end()) {
    r.stop = StopReason::StopToken;
    return true;
  }
  if (on_token) on_token(tok);
  if (int(r.ids.size()) >= o.max_new_tokens) {
    r.stop = StopReason::MaxNewTokens;
    return true;
  }
  if (fed >= need) {  // only when the model's positions ran out
    r.stop = StopReason::Context;
    return true;
  }
  return false;
}

GenerateResult Generator::generate(std::span<const int32_t> prompt, const std::function<void(int32_t)>& on_token) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  const int n = int(prompt.size());
  const int max_pos = model_.config().max_pos;
  check_prompt_length(n, max_pos);
  const int need = positions_needed(n, o_, max_pos);

  GenerateResult r;
  r.prompt_tokens = n;
  const size_t start = reuse_or_reset(prompt, need);
  r.prefilled = n - int(start);
  const int V = model_.config().vocab_size;
  auto t0 = Clock::now();
  Tensor logits = model_.decode(prompt.data() + start, 1, r.prefilled, cache_);
  cached_.insert(cached_.end(), prompt.begin() + start, prompt.end());
  int32_t tok = sampler_.sample({logits.f32(), size_t(V)});
  r.prefill_ms = ms_since(t0);
  while (!accept_token(r, tok, o_, cache_.len, need, on_token)) {
    auto t = Clock::now();
    logits = model_.decode(&tok, 1, 1, cache_);
    cached_.push_back(tok);
    tok = sampler_.sample({logits.f32(), size_t(V)});
    r.decode_ms += ms_since(t);
    ++r.decode_steps;
  }
  return r;
}

namespace {

void add_eos_ids(const fs::path& file, std::vector<int32_t>& out) {
  std::ifstream f(file);
  if (!f) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("eos_token_id")) return;
  const auto& e = j["eos_token_id"];
  auto add = [&](const nlohmann::json& v) {
    if (!v.is_number_integer()) throw Error(file.string() + ": field 'eos_token_id' must be an integer or a list of them");
    int32_t id = v.get<int32_t>();
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (e.is_null()) return;
  if (e.is_array()) {
    for (const auto& v : e) add(v);
  } else {
    add(e);
  }
}

}  // namespace

std::vector<int32_t> hf_eos_ids(const std::string& model_dir) {
  std::vector<int32_t> out;
  fs::path dir(model_dir);
  if (!fs::is_directory(dir)) return out;
  add_eos_ids(dir / "generation_config.json", out);
  add_eos_ids(dir / "config.json", out);
  return out;
}

}  // namespace qtrain
