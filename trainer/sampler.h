// Picking the next token from a row of logits: greedy (temperature 0), or a
// seeded draw after HF's warpers in HF's order (temperature, then top-k, then
// top-p). Same options and seed -> the same tokens, on any platform: the draw
// uses std::mt19937_64 and its own [0,1) conversion, not a std distribution
// (those differ between standard libraries).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace qtrain {

struct SamplingOptions {
  float temperature = 0.7f;  // 0 = greedy (top_k, top_p and seed are then unused)
  int top_k = 0;             // keep the k largest logits (0 = all); ties with the k-th are kept, as HF does
  float top_p = 1.f;         // keep the smallest set of most likely tokens whose probability reaches top_p (1 = all)
  uint64_t seed = 0;
};

// Throws a BadInput Error naming the flag (--temperature, --top-k, --top-p)
// when a value is out of range: temperature < 0, top_k < 0, top_p not in (0, 1].
void check_sampling_options(const SamplingOptions& o);

// The index of the largest logit; the lowest index among equal maxima (as
// torch.argmax). NaN logits are a Runtime Error.
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o);  // checks o

  // The next token for one row of logits [V].
  int32_t sample(std::span<const float> logits);

  // The tokens a draw can return and their probabilities (summing to 1),
  // ordered by decreasing probability (ties: lower id first), after the
  // temperature, top-k and top-p. Greedy: the argmax alone. Exposed so tests
  // can check the masking exactly.
  std::vector<std::pair<int32_t, double>> distribution(std::span<const float> logits);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
  std::vector<std::pair<int32_t, double>> cand_;  // reused across calls
};

}  // namespace qtrain
