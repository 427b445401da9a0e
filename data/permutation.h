// IndexPermutation: a seeded bijection of [0, n) computed per index in O(1)
// memory (a 4-round Feistel network over the next power-of-two domain, with
// cycle walking back into [0, n)). Lets a rank jump to any position of a
// shuffled order of billions of windows without materialising the order.
#pragma once
#include <cstdint>

namespace qtrain {

class IndexPermutation {
 public:
  IndexPermutation(uint64_t n, uint64_t seed);
  uint64_t operator()(uint64_t i) const;  // i in [0, n)
  uint64_t size() const { return n_; }

 private:
  uint64_t feistel(uint64_t x) const;
  uint64_t n_;
  int half_bits_;
  uint64_t half_mask_;
  uint64_t keys_[4];
};

}  // namespace qtrain
