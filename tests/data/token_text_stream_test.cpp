// Streaming generated text: only whole UTF-8 characters leave, even when the
// GPT-2 tokenizer splits one character over several tokens.
#include "data/token_text_stream.h"

#include "data/utf8.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

std::string gpt2_dir() { return testing::shared_dir() + "/data/gpt2-tokenizer"; }

TEST(Utf8, CompletePrefixHoldsBackAnUnfinishedCharacter) {
  EXPECT_EQ(utf8::complete_prefix(""), 0u);
  EXPECT_EQ(utf8::complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8::complete_prefix("a\xC3"), 1u);                // é without its second byte
  EXPECT_EQ(utf8::complete_prefix("a\xC3\xA9"), 3u);            // é
  EXPECT_EQ(utf8::complete_prefix("\xE4\xB8"), 0u);             // 世, 2 of 3 bytes
  EXPECT_EQ(utf8::complete_prefix("x\xE4\xB8\x96"), 4u);        // 世
  EXPECT_EQ(utf8::complete_prefix("\xF0\x9F\x99"), 0u);         // 🙂, 3 of 4 bytes
  EXPECT_EQ(utf8::complete_prefix("\xF0\x9F\x99\x82!"), 5u);
  // Bytes that can never complete are not held back.
  EXPECT_EQ(utf8::complete_prefix("a\x80"), 2u);
  EXPECT_EQ(utf8::complete_prefix("a\xFF"), 2u);
  EXPECT_EQ(utf8::complete_prefix("\x80\x80\x80\x80\x80"), 5u);
}

TEST(TokenTextStream, ReleasesWholeCharactersOnly) {
  auto tok = Tokenizer::load(gpt2_dir());
  const std::string text = "d\xC3\xA9j\xC3\xA0 vu: \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82\xF0\x9F\x8E\x89 ok";
  auto ids = tok->encode(text);
  TokenTextStream s(*tok);
  std::string out;
  int held = 0;  // pushes that released nothing: a character still incomplete
  for (int32_t id : ids) {
    std::string piece = s.push(id);
    EXPECT_EQ(utf8::first_invalid(piece), std::string_view::npos) << "token " << id;
    if (piece.empty()) ++held;
    out += piece;
  }
  out += s.finish();
  EXPECT_EQ(out, text);
  EXPECT_GT(held, 0) << "no character spanned two tokens: the test does not test the hold-back";
}

TEST(TokenTextStream, FinishReplacesACutCharacter) {
  auto tok = Tokenizer::load(gpt2_dir());
  const std::string emoji = "\xF0\x9F\x99\x82";  // several GPT-2 tokens
  auto ids = tok->encode("ok");
  auto cut = tok->encode(emoji);
  ASSERT_GE(cut.size(), 2u);
  ids.insert(ids.end(), cut.begin(), cut.end() - 1);  // the emoji's last piece never comes
  TokenTextStream s(*tok);
  std::string out;
  for (int32_t id : ids) out += s.push(id);
  EXPECT_EQ(out, "ok");
  out += s.finish();
  EXPECT_EQ(out, "ok\xEF\xBF\xBD");  // U+FFFD
}

}  // namespace
}  // namespace qtrain
