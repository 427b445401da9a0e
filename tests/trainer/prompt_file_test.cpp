// The --prompts file of qtrain generate (trainer/prompt_file.h): JSONL rows
// with a text prompt or token ids, in file order; every bad row is an error
// naming FILE:LINE and the field.
#include "trainer/prompt_file.h"

#include <fstream>

#include "kernels/error.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

std::string write(const testing::TempDir& d, const std::string& text) {
  const std::string p = (d.path / "prompts.jsonl").string();
  std::ofstream(p) << text;
  return p;
}

TEST(PromptFile, ReadsTextAndIdsInOrder) {
  testing::TempDir d;
  const std::string p = write(d,
                              "{\"prompt\": \"def add(a, b):\\n    return\", \"id\": 7}\n"
                              "\n"
                              "{\"prompt_ids\": [1, 2, 3]}\r\n"
                              "{\"prompt\": \"x\"}");
  auto rows = read_prompt_file(p, 100);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].text, "def add(a, b):\n    return");
  EXPECT_FALSE(rows[0].has_ids);
  EXPECT_EQ(rows[0].where, p + ":1");
  EXPECT_TRUE(rows[1].has_ids);
  EXPECT_EQ(rows[1].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(rows[1].where, p + ":3");
  EXPECT_EQ(rows[2].text, "x");
}

TEST(PromptFile, BadRowsNameTheLineAndField) {
  testing::TempDir d;
  const std::vector<std::pair<std::string, std::string>> bad{
      {"{\"prompt\": \"ok\"}\nnot json\n", ":2: not valid JSON"},
      {"[1, 2]\n", ":1: not a JSON object"},
      {"{\"text\": \"hi\"}\n", ":1: no field 'prompt'"},
      {"{\"prompt\": \"hi\", \"prompt_ids\": [1]}\n", "both 'prompt' and 'prompt_ids'"},
      {"{\"prompt\": 3}\n", "field 'prompt' must be a string"},
      {"{\"prompt\": \"\"}\n", "field 'prompt' is empty"},
      {"{\"prompt_ids\": []}\n", "field 'prompt_ids' must be a non-empty list"},
      {"{\"prompt_ids\": [1, \"a\"]}\n", "field 'prompt_ids' holds \"a\""},
      {"{\"prompt_ids\": [1, 100]}\n", "id 100 is outside the model's vocabulary [0, 100)"},
      {"{\"prompt_ids\": [-1]}\n", "id -1 is outside"},
      {"\n  \n", ": no prompts"},
  };
  for (const auto& [text, want] : bad) {
    const std::string p = write(d, text);
    try {
      read_prompt_file(p, 100);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what() << "\nwant: " << want;
    }
  }
  EXPECT_THROW(read_prompt_file((d.path / "missing.jsonl").string(), 100), Error);
}

}  // namespace
}  // namespace qtrain
