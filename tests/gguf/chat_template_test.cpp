// ChatTemplate vs transformers' apply_chat_template: byte-identical output for
// SmolLM2's, ChatML, Llama-3, Zephyr, Llama-2 and a kitchen-sink template
// (tests/fixtures/gguf/chat_templates.json, made by make_chat_template_fixtures.py).
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/chat_format.h"
#include "data/chat_template.h"
#include "kernels/error.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

nlohmann::json cases() {
  return testing::fixture_json("gguf/chat_templates.json");
}

std::vector<ChatMessage> messages(const nlohmann::json& j) {
  std::vector<ChatMessage> out;
  for (auto& m : j) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

TEST(ChatTemplate, MatchesTransformersByteForByte) {
  nlohmann::json all = cases();
  ASSERT_GE(all.size(), 20u);
  for (auto& c : all) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ChatTemplate t(c["template"].get<std::string>());
    std::string got = t.render(messages(c["messages"]), c["add_generation_prompt"].get<bool>(),
                               c["bos_token"].get<std::string>(), c["eos_token"].get<std::string>());
    EXPECT_EQ(got, c["expected"].get<std::string>());
  }
}

TEST(ChatTemplate, RaiseExceptionCarriesTheTemplatesMessage) {
  std::string llama2;
  for (auto& c : cases())
    if (c["name"].get<std::string>().rfind("llama2/", 0) == 0) llama2 = c["template"];
  ASSERT_FALSE(llama2.empty());
  ChatTemplate t(llama2);
  try {
    t.render({{"user", "a"}, {"user", "b"}}, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Conversation roles must alternate"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, SyntaxErrorsNameTheLine) {
  auto msg = [](const std::string& src) {
    try {
      ChatTemplate t(src);
      t.render({{"user", "x"}}, false);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg("a\n{% if x %}b").find("missing {% endif %}"), std::string::npos);
  EXPECT_NE(msg("a\n\n{{ x + }}").find("line 3"), std::string::npos);
  EXPECT_NE(msg("{{ 'abc }}").find("never closed"), std::string::npos);
  EXPECT_NE(msg("{% macro m() %}{% endmacro %}").find("unsupported tag {% macro"), std::string::npos);
  EXPECT_NE(msg("{{ messages | frobnicate }}").find("unsupported filter 'frobnicate'"), std::string::npos);
  EXPECT_NE(msg("{% endfor %}").find("unexpected {% endfor %}"), std::string::npos);
}

TEST(ChatTemplate, ChatMLAgreesWithDataBuiltInRenderer) {
  std::string chatml;
  for (auto& c : cases())
    if (c["name"].get<std::string>().rfind("chatml/", 0) == 0) chatml = c["template"];
  ChatTemplate jinja(chatml);
  ChatMLRenderer builtin;
  std::vector<ChatTurn> turns = {{"system", "Be brief."}, {"user", "Hi\nthere"}, {"assistant", " Hello! "}};
  std::vector<ChatMessage> msgs;
  for (auto& t : turns) msgs.push_back({t.role, t.content});
  for (bool gen : {false, true}) EXPECT_EQ(jinja.render(msgs, gen), builtin.render(turns, gen));
}

TEST(ChatTemplate, SimpleCases) {
  EXPECT_EQ(ChatTemplate("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 'a' ~ 1 ~ none }}").render({}, false), "7|9|a1None");
  EXPECT_EQ(ChatTemplate("{% for m in messages %}{{ loop.revindex }}{{ m.role[0] }}{% endfor %}")
                .render({{"user", ""}, {"assistant", ""}}, false),
            "2u1a");
  EXPECT_EQ(ChatTemplate("  {% if true %}\n  x\n  {% endif %}\ny").render({}, false), "  x\ny");
  EXPECT_EQ(ChatTemplate("{{ 'a' }}  {{- 'b' -}}  \n {{ 'c' }}").render({}, false), "abc");
}

}  // namespace
}  // namespace qtrain
