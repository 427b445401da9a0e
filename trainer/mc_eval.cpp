#include "trainer/mc_eval.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "kernels/error.h"

namespace qtrain {

namespace {

// The ids of " A", " B", ...: each must be one token, as in every GPT-2-family
// vocabulary, since the harness scores one next-token probability per letter.
std::vector<int32_t> letter_ids(const Tokenizer& tok, int n, int vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) {
    auto t = tok.encode(" " + mc_letter(i));
    if (t.size() != 1)
      throw Error("tokenizer: \" " + mc_letter(i) + "\" is " + std::to_string(t.size()) +
                  " tokens; letter scoring needs one token per choice letter");
    if (t[0] >= vocab) throw Error("tokenizer: \" " + mc_letter(i) + "\" is outside the model's vocabulary");
    ids.push_back(t[0]);
  }
  return ids;
}

// log softmax(row)[id] for each id, in double.
void letter_logliks(const float* row, int V, const std::vector<int32_t>& ids, int n, double* out) {
  float mx = row[0];
  for (int v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double s = 0;
  for (int v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
  const double lse = double(mx) + std::log(s);
  for (int c = 0; c < n; ++c) out[c] = double(row[ids[size_t(c)]]) - lse;
}

}  // namespace

McResult evaluate_mc(Model& model, const Tokenizer& tok, const McSet& set, const McOptions& o, Communicator& comm) {
  if (o.shots < 0) throw Error("--shots must be >= 0");
  if (o.max_tokens < 1) throw Error("--seq-len must be >= 1");
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1, got " + std::to_string(o.batch_size));
  const int V = model.config().vocab_size;
  const int nq = int(set.questions.size());
  int max_choices = 0;
  for (const auto& q : set.questions) max_choices = std::max(max_choices, int(q.choices.size()));
  const std::vector<int32_t> letters = letter_ids(tok, max_choices, V);

  // This rank's questions, longest prompt first so each batch pads little.
  std::vector<int> mine;
  std::vector<McPrompt> prompts(static_cast<size_t>(nq));
  for (int i = comm.rank(); i < nq; i += comm.world()) {
    prompts[size_t(i)] = build_mc_prompt(tok, set, set.questions[size_t(i)], o.shots, o.max_tokens);
    mine.push_back(i);
  }
  std::stable_sort(mine.begin(), mine.end(),
                   [&](int a, int b) { return prompts[size_t(a)].ids.size() > prompts[size_t(b)].ids.size(); });

  // Every rank fills its own questions' rows and zeros elsewhere; one sum gives all.
  // Per question: max_choices log-likelihoods, shots, cut.
  const int stride = max_choices + 2;
  std::vector<double> table(size_t(nq) * size_t(stride), 0.0);
  auto record = [&](int qi, const float* last_logits) {
    double* out = &table[size_t(qi) * size_t(stride)];
    letter_logliks(last_logits, V, letters, int(set.questions[size_t(qi)].choices.size()), out);
    out[max_choices] = prompts[size_t(qi)].shots;
    out[max_choices + 1] = prompts[size_t(qi)].cut ? 1 : 0;
  };
  for (size_t p = 0; p < mine.size();) {
    const int T = int(prompts[size_t(mine[p])].ids.size());
    const int64_t row_bytes = int64_t(T) * V * int64_t(sizeof(float));
    if (row_bytes > o.logits_budget) {
      // One prompt's logits at every position would pass the budget (long
      // prompt, large vocabulary): a KV-cache prefill returns the last only.
      const auto& ids = prompts[size_t(mine[p])].ids;
      KvCache cache = model.new_kv_cache(1, T);
      record(mine[p], model.decode(ids.data(), 1, T, cache).f32());
      ++p;
      continue;
    }
    const int B = int(std::min<int64_t>({int64_t(std::max(1, o.batch_size)), int64_t(mine.size() - p),
                                         o.logits_budget / row_bytes}));
    // Right padding: attention is causal, so a row's positions before its
    // padding never see it.
    std::vector<int32_t> inputs(size_t(B) * size_t(T), 0);
    for (int r = 0; r < B; ++r) {
      const auto& ids = prompts[size_t(mine[p + size_t(r)])].ids;
      std::copy(ids.begin(), ids.end(), inputs.begin() + ptrdiff_t(r) * T);
    }
    Tensor logits = model.logits(TokenBatch{B, T, inputs.data(), nullptr});
    for (int r = 0; r < B; ++r) {
      const int qi = mine[p + size_t(r)];
      record(qi, logits.f32() + (int64_t(r) * T + int64_t(prompts[size_t(qi)].ids.size()) - 1) * V);
    }
    p += size_t(B);
  }
  comm.allreduce_sum(table.data(), int(table.size()));

  McResult r;
  std::set<std::string> short_dev;
  for (int i = 0; i < nq; ++i) {
    const McQuestion& q = set.questions[size_t(i)];
    const double* row = &table[size_t(i) * size_t(stride)];
    McScore s;
    s.loglik.assign(row, row + q.choices.size());
    s.pred = int(std::max_element(s.loglik.begin(), s.loglik.end()) - s.loglik.begin());
    s.shots = int(row[max_choices]);
    s.cut = row[max_choices + 1] != 0;
    auto dev = set.dev.find(q.subject);
    const int available = std::min(o.shots, dev == set.dev.end() ? 0 : int(dev->second.size()));
    if (available < o.shots) short_dev.insert(q.subject);
    if (s.shots < available) {
      ++r.shortened;
      r.shots_dropped += available - s.shots;
    }
    r.cut += s.cut;
    const bool ok = s.pred == q.answer;
    ++r.n;
    r.correct += ok;
    auto& sub = r.subjects[q.subject];
    ++sub.first;
    sub.second += ok;
    r.scores.push_back(std::move(s));
  }
  r.short_dev.assign(short_dev.begin(), short_dev.end());
  return r;
}

nlohmann::ordered_json McResult::to_json(const McOptions& o) const {
  auto acc = [](int64_t c, int64_t n) { return n > 0 ? double(c) / double(n) : 0.0; };
  nlohmann::ordered_json subj = nlohmann::ordered_json::object();
  for (const auto& [name, nc] : subjects) subj[name] = {{"accuracy", acc(nc.second, nc.first)}, {"n", nc.first}};
  return nlohmann::ordered_json{{"task", "mc"},
          {"accuracy", acc(correct, n)},
          {"n", n},
          {"correct", correct},
          {"shots", o.shots},
          {"seq_len", o.max_tokens},
          {"subjects", subj},
          // Prompts that lost shots to fit --seq-len, the shots they lost, and
          // those cut from the left even without shots.
          {"truncated", {{"prompts_fewer_shots", shortened}, {"shots_dropped", shots_dropped}, {"prompts_cut", cut}}},
          {"subjects_short_of_dev", short_dev}};
}

}  // namespace qtrain
