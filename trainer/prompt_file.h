// The prompts of `qtrain generate --prompts FILE`: JSONL (plain or gzip'd),
// one object per line with the prompt as text, {"prompt": "def add(a, b):\n"},
// or as token ids, {"prompt_ids": [1, 2, 3]}. JSON lets a prompt hold
// newlines (code prompts do); other fields are ignored, so a dataset's own
// JSONL works as it is. Blank lines are skipped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qtrain {

struct PromptLine {
  std::string text;          // "prompt"
  std::vector<int32_t> ids;  // "prompt_ids"
  bool has_ids = false;
  std::string where;         // "FILE:LINE", for messages
};

// Every prompt in file order. A line that is not a JSON object, with neither
// or both fields, a field of the wrong type, an empty prompt, or an id outside
// [0, vocab) is a BadInput Error naming FILE:LINE and the field; so is a
// file without prompts.
std::vector<PromptLine> read_prompt_file(const std::string& path, int vocab);

}  // namespace qtrain
