#include "trainer/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace qtrain {

namespace {
std::string shortest(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", double(v));
  return buf;
}
}  // namespace

void check_sampling_options(const SamplingOptions& o) {
  if (!(o.temperature >= 0.f) || !std::isfinite(o.temperature))
    throw Error("--temperature must be a finite number >= 0 (0 = greedy), got " + shortest(o.temperature));
  if (o.top_k < 0) throw Error("--top-k must be >= 0 (0 = no limit), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0.f && o.top_p <= 1.f)) throw Error("--top-p must be in (0, 1] (1 = no limit), got " + shortest(o.top_p));
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: empty row of logits", ErrorKind::Runtime);
  size_t best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) throw Error("sampler: the logits contain NaN (position " + std::to_string(i) + ")", ErrorKind::Runtime);
    if (logits[i] > logits[best]) best = i;  // strict: the first of equal maxima wins
  }
  return int32_t(best);
}

Sampler::Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) { check_sampling_options(o); }

namespace {

// Candidates (id, unnormalised probability) after temperature and top-k, in id
// order; returns their total. Probabilities are exp((l - max) / T), in double.
double temperature_top_k(std::span<const float> logits, const SamplingOptions& o,
                         std::vector<std::pair<int32_t, double>>& cand) {
  const size_t V = logits.size();
  float mx = logits[size_t(argmax(logits))];  // also rejects NaN
  if (std::isinf(mx) && mx < 0) throw Error("sampler: every logit is -inf", ErrorKind::Runtime);
  float kth = -std::numeric_limits<float>::infinity();
  if (o.top_k > 0 && size_t(o.top_k) < V) {
    // HF's TopKLogitsWarper removes logits < the k-th largest: ties with it stay.
    std::vector<float> tmp(logits.begin(), logits.end());
    std::nth_element(tmp.begin(), tmp.begin() + (o.top_k - 1), tmp.end(), std::greater<float>());
    kth = tmp[size_t(o.top_k - 1)];
  }
  const double inv_t = 1.0 / double(o.temperature);
  cand.clear();
  double total = 0;
  for (size_t i = 0; i < V; ++i) {
    if (logits[i] < kth) continue;
    double p = std::exp((double(logits[i]) - double(mx)) * inv_t);
    if (p <= 0) continue;  // underflow (or -inf): never drawn
    cand.emplace_back(int32_t(i), p);
    total += p;
  }
  return total;
}

bool more_likely(const std::pair<int32_t, double>& a, const std::pair<int32_t, double>& b) {
  return a.second != b.second ? a.second > b.second : a.first < b.first;
}

// HF's TopPLogitsWarper keeps a token when the probability of the tokens
// ranked strictly above it is < top_p (the token that crosses top_p stays, so
// the top token always does). Sorts cand by decreasing probability and drops
// the rest; returns the kept total (unnormalised).
double top_p_filter(std::vector<std::pair<int32_t, double>>& cand, double total, double top_p, size_t V) {
  // A token whose probability is <= (1 - top_p) / V cannot be kept: it and
  // every less likely token together weigh at most 1 - top_p. Dropping them
  // before the sort (at half that bound, clear of rounding) leaves the ranking
  // of the others, and so the result, unchanged; it makes the sort short.
  const double floor = 0.5 * (1.0 - top_p) / double(V) * total;
  std::erase_if(cand, [&](const auto& c) { return c.second <= floor; });
  // Only the kept head needs sorting: select the m most likely (O(V)), sort
  // them, and widen m only if they do not reach top_p. A trained model's top
  // few hundred tokens nearly always do; a flat distribution ends in a full sort.
  const double need = top_p * total;
  for (size_t m = std::min<size_t>(cand.size(), 256);; m = std::min(cand.size(), 4 * m)) {
    if (m < cand.size()) std::nth_element(cand.begin(), cand.begin() + long(m), cand.end(), more_likely);
    std::sort(cand.begin(), cand.begin() + long(m), more_likely);
    double above = 0;
    size_t keep = 0;
    while (keep < m && above < need) above += cand[keep++].second;
    if (above >= need || m == cand.size()) {
      cand.resize(keep);
      return above;
    }
  }
}

}  // namespace

std::vector<std::pair<int32_t, double>> Sampler::distribution(std::span<const float> logits) {
  std::vector<std::pair<int32_t, double>> out;
  if (o_.temperature == 0.f) {
    out.emplace_back(argmax(logits), 1.0);
    return out;
  }
  double total = temperature_top_k(logits, o_, out);
  if (o_.top_p < 1.f) total = top_p_filter(out, total, o_.top_p, logits.size());
  std::sort(out.begin(), out.end(), more_likely);
  for (auto& c : out) c.second /= total;
  return out;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (o_.temperature == 0.f) return argmax(logits);
  double total = temperature_top_k(logits, o_, cand_);
  if (o_.top_p < 1.f) total = top_p_filter(cand_, total, o_.top_p, logits.size());
  // u in [0, 1) from the top 53 bits: the same on every standard library.
  const double u = double(rng_() >> 11) * 0x1.0p-53;
  const double r = u * total;
  double acc = 0;
  for (const auto& c : cand_) {
    acc += c.second;
    if (r < acc) return c.first;
  }
  return cand_.back().first;  // r within rounding of the total
}

}  // namespace qtrain
