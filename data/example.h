// Example: one training record as the readers produce it, before tokenizing:
// either text segments (each in or out of the loss: a prompt is out, a
// response in) or token ids that are already final.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qtrain {

struct TextSegment {
  std::string text;
  bool loss = true;     // do the tokens of this segment count in the loss?
  bool special = false; // may hold special tokens (rendered chat markup)
};

struct Example {
  std::vector<TextSegment> segments;  // text records
  std::vector<int32_t> ids;           // pre-tokenized records (input_ids)
  bool pretokenized = false;
};

// A tokenized document: ids and, per id, whether it is a loss target.
struct Document {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;  // same length as ids
};

}  // namespace qtrain
