// How chat messages become text: the model's own chat template (Jinja,
// data/chat_template.h) behind ChatRenderer, or the built-in ChatML (the
// SmolLM2-Instruct / Qwen format) when the model ships none.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/tokenizer.h"

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

// The model's Jinja chat template (from tokenizer_config.json or GGUF
// tokenizer.chat_template), with its bos/eos token texts.
class JinjaChatRenderer : public ChatRenderer {
 public:
  JinjaChatRenderer(std::string jinja, std::string bos_token = "", std::string eos_token = "");
  ~JinjaChatRenderer() override;
  std::string render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const override;

 private:
  std::unique_ptr<class ChatTemplate> tmpl_;
  std::string bos_, eos_;
};

// The renderer a model directory (or tokenizer_config.json file) asks for:
// its "chat_template" (a string, or the entry named "default" of a list), or
// ChatML when it has none. Unreadable JSON -> Error naming the file.
std::shared_ptr<const ChatRenderer> chat_renderer_for(const std::string& model_path);

// Renders a conversation as segments where only the assistant turns are in
// the loss. Works with any renderer whose output for a prefix of the turns is
// a prefix of the output for all of them (true of ChatML and of HF templates):
// each assistant turn's text is render(turns[..i]) minus render(turns[..i), true).
std::vector<TextSegment> chat_segments(const ChatRenderer& r, const std::vector<ChatTurn>& turns);

// The special token r's format closes an assistant turn with ("<|im_end|>"
// for ChatML, "<|eot_id|>" for Llama 3), which generation stops on: the first
// token of what r renders right after an assistant message, when that is a
// special token of tok. nullopt when there is none, or the template refuses
// a plain user/assistant exchange.
std::optional<int32_t> end_of_turn_token(const ChatRenderer& r, const Tokenizer& tok);

}  // namespace qtrain
