// libFuzzer target for JSONL training records (data/record_format.cpp):
// CodeSearchNet, instruction (Alpaca, Unnatural Instructions), chat and the
// rest, each line parsed with every record kind as --format would.
#include "data/record_format.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using qtrain::RecordKind;
  static const qtrain::RecordFormat formats[] = {
      {RecordKind::Auto, "code"},          {RecordKind::CodeSearchNet, "docstring-code"},
      {RecordKind::Instruct, "code"},      {RecordKind::Chat, "code"},
      {RecordKind::Text, "code"},          {RecordKind::InputIds, "code"}};
  std::string_view text = qtrain::fuzz::as_text(data, size);
  size_t lineno = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    std::string where = "fuzz.jsonl:" + std::to_string(++lineno);
    for (const auto& f : formats) qtrain::fuzz::parse_or_bad_input([&] { (void)f.parse(line, where); });
    pos = nl + 1;
  }
  return 0;
}
