// The token generation stops on in a chat: what the template writes right
// after an assistant message, when that is a special token of the vocabulary.
#include <gtest/gtest.h>

#include "data/chat_format.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

// Every byte, then ChatML's two markers as special tokens (no merges needed).
std::unique_ptr<Tokenizer> chatml_tokenizer() {
  std::vector<Tokenizer::Entry> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back({std::string(1, char(b)), false});
  vocab.push_back({"<|im_start|>", true});
  vocab.push_back({"<|im_end|>", true});
  return std::make_unique<Tokenizer>(vocab, std::vector<std::pair<int32_t, int32_t>>{}, PreTokenizer::Gpt2, -1, -1,
                                     "test vocabulary");
}

TEST(ChatStop, EndOfTurnOfTheGgufTemplate) {
  LoadedModel m = load_gguf_model(testing::fixture("gguf/tiny_llama.gguf"));  // a ChatML template
  auto tok = chatml_tokenizer();
  JinjaChatRenderer jinja(m.tokenizer.chat_template);
  EXPECT_EQ(end_of_turn_token(jinja, *tok), std::optional<int32_t>(257));
  EXPECT_EQ(end_of_turn_token(ChatMLRenderer(), *tok), std::optional<int32_t>(257));
}

TEST(ChatStop, NoneWhenTheMarkerIsPlainText) {
  auto gpt2 = Tokenizer::load(testing::shared_dir() + "/data/gpt2-tokenizer");  // no <|im_end|> token
  EXPECT_FALSE(end_of_turn_token(ChatMLRenderer(), *gpt2).has_value());
  // A template that closes a turn with the eos token text: GPT-2's <|endoftext|> is special.
  JinjaChatRenderer eos_closed("{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}", "",
                               "<|endoftext|>");
  EXPECT_EQ(end_of_turn_token(eos_closed, *gpt2), gpt2->eos_id());
  // A template that refuses the exchange gives none rather than an error.
  JinjaChatRenderer refuses("{{ raise_exception('system turn required') }}");
  EXPECT_FALSE(end_of_turn_token(refuses, *gpt2).has_value());
}

}  // namespace
}  // namespace qtrain
