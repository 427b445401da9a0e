// How chat messages become text. The model's own chat template (Jinja, in
// data/chat_template.h, another module) plugs in behind ChatRenderer; until
// then ChatMLRenderer is the built-in (the SmolLM2-Instruct / Qwen format).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/example.h"

namespace qtrain {

struct ChatTurn {
  std::string role;  // system | user | assistant
  std::string content;
};

class ChatRenderer {
 public:
  virtual ~ChatRenderer() = default;
  virtual std::string render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const = 0;
};

// <|im_start|>{role}\n{content}<|im_end|>\n per turn; the generation prompt is
// "<|im_start|>assistant\n".
class ChatMLRenderer : public ChatRenderer {
 public:
  std::string render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const override;
};

// Renders a conversation as segments where only the assistant turns are in
// the loss. Works with any renderer whose output for a prefix of the turns is
// a prefix of the output for all of them (true of ChatML and of HF templates):
// each assistant turn's text is render(turns[..i]) minus render(turns[..i), true).
std::vector<TextSegment> chat_segments(const ChatRenderer& r, const std::vector<ChatTurn>& turns);

}  // namespace qtrain
