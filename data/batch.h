// Batch: one rank's micro-batch of B rows of T tokens, with next-token targets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qtrain {

constexpr int32_t kIgnoreTarget = -100;  // HF's ignore_index: not in the loss

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs;   // [B*T] token ids (padding positions hold eos)
  std::vector<int32_t> targets;  // [B*T] targets[b,t] = inputs[b,t+1] when that token is in the same
                                 // row and in the loss, else -100; the last position of every row is -100
                                 // (a row of T tokens gives T-1 predictions, the HF convention).
  int64_t n_targets() const {
    int64_t n = 0;
    for (int32_t t : targets) n += t != kIgnoreTarget;
    return n;
  }
};

// One row before batching: ids and, per id, whether predicting it is in the loss.
struct Row {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;
};

// Rows -> Batch, padding every row to T with `pad_id` (targets -100 there).
Batch make_batch(const std::vector<Row>& rows, int T, int32_t pad_id);

}  // namespace qtrain
