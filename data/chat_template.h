// Chat templates: the Jinja snippet a model ships (tokenizer.chat_template in
// GGUF, tokenizer_config.json in HF) that turns a conversation into the text
// the model was trained on. ChatTemplate interprets the subset of Jinja such
// templates use, with the environment transformers renders them in
// (trim_blocks, lstrip_blocks), so the output is byte-identical to
// apply_chat_template:
//   {{ expr }}, {% if/elif/else %}, {% for x in xs [if c] %}...{% else %},
//   {% set x = e %} / {% set ns.x = e %}, {# comments #}, {%- -%} trimming;
//   literals, names, a.b, a['b'], a[i], a[i:j], calls; + - * / // % ~,
//   comparisons, in / not in, and / or / not, x if c else y, is [not] defined /
//   none / string / number / ...; filters trim length upper lower first last
//   default join tojson string; string methods strip lstrip rstrip startswith
//   endswith upper lower title split replace; dict items/keys/values/get;
//   loop.index/index0/first/last/length/revindex; namespace(), raise_exception().
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace qtrain {

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
 public:
  // Parses the template; a syntax error is a qtrain::Error (BadInput) naming
  // the line.
  explicit ChatTemplate(std::string jinja_source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // raise_exception() in the template, or an unsupported construct met while
  // rendering, is a qtrain::Error carrying the template's message.
  std::string render(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                     const std::string& bos_token = "", const std::string& eos_token = "") const;

  struct Program;  // the parsed template (chat_template.cpp)

 private:
  std::string source_;
  std::unique_ptr<Program> program_;
};

}  // namespace qtrain
