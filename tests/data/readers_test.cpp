// Readers: gzip line streaming, the CodeSearchNet tree, record formats
// (CodeSearchNet namings, Alpaca, Unnatural Instructions, chat, HH-RLHF,
// input_ids), prompt masking, and .bin token shards.
#include <nlohmann/json.hpp>

#include "data/corpus_files.h"
#include "data/gz_lines.h"
#include "data/record_format.h"
#include "data/stream.h"
#include "data/token_shards.h"
#include "tests/data/data_files.h"

using namespace qtrain;
using namespace qtrain::testing;
using nlohmann::json;

namespace {

std::vector<std::string> all_lines(const std::string& path) {
  LineReader r(path);
  std::vector<std::string> out;
  std::string_view l;
  while (r.next(l)) out.emplace_back(l);
  return out;
}

std::string joined(const Example& ex, bool loss) {
  std::string s;
  for (const auto& seg : ex.segments)
    if (seg.loss == loss) s += seg.text;
  return s;
}

}  // namespace

TEST(LineReader, PlainGzipCrlfAndConcatenatedMembers) {
  ScratchDir d;
  write_text(d.file("a.jsonl"), "one\r\ntwo\n\nlast-without-newline");
  EXPECT_EQ(all_lines(d.file("a.jsonl")), (std::vector<std::string>{"one", "two", "", "last-without-newline"}));
  write_gz(d.file("b.jsonl.gz"), "x\ny\n");
  write_gz(d.file("c.jsonl.gz"), "z\n");
  // cat b c > bc: two gzip members in one file, which gzip itself reads as one stream.
  write_text(d.file("bc.jsonl.gz"), read_bytes(d.file("b.jsonl.gz")) + read_bytes(d.file("c.jsonl.gz")));
  EXPECT_EQ(all_lines(d.file("bc.jsonl.gz")), (std::vector<std::string>{"x", "y", "z"}));
}

TEST(LineReader, LongLinesAcrossChunks) {
  ScratchDir d;
  std::string a(700000, 'a'), b(5, 'b'), c(300001, 'c');
  write_gz(d.file("long.gz"), a + "\n" + b + "\n" + c);
  auto lines = all_lines(d.file("long.gz"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], a);
  EXPECT_EQ(lines[1], b);
  EXPECT_EQ(lines[2], c);
}

TEST(CorpusFiles, CodeSearchNetTreeAndSplits) {
  auto train = corpus_files(csn_root(), "train");
  ASSERT_EQ(train.size(), 2u);
  EXPECT_NE(train[0].find("python/final/jsonl/train/python_train_0.jsonl.gz"), std::string::npos);
  EXPECT_NE(train[1].find("python_train_1.jsonl.gz"), std::string::npos);
  EXPECT_EQ(corpus_files(csn_root() + "/python", "valid").size(), 2u);
  EXPECT_EQ(corpus_files(train[1], "ignored"), std::vector<std::string>{train[1]});
}

TEST(CodeSearchNet, RecordCountsOfTheSharedCorpus) {
  // README of ../shared: sympy 6,247/327/490 and numpy 1,556/97/91 functions.
  RecordFormat fmt(RecordKind::CodeSearchNet, "code");
  std::map<std::string, int> want = {{"valid", 327 + 97}, {"test", 490 + 91}};
  for (auto& [split, n] : want) {
    int count = 0;
    for (const auto& f : corpus_files(csn_root(), split)) {
      LineReader r(f);
      std::string_view l;
      while (r.next(l)) {
        Example ex = fmt.parse(l, f);
        ASSERT_EQ(ex.segments.size(), 1u);
        EXPECT_NE(ex.segments[0].text.find("def "), std::string::npos);
        ++count;
      }
    }
    EXPECT_EQ(count, n) << split;
  }
}

TEST(CodeSearchNet, BothFieldNamingsAndDocstringToCode) {
  json orig = {{"repo", "r"}, {"code", "def f():\n    return 1\n"}, {"docstring", "Return one."}};
  json hf = {{"repository_name", "r"},
             {"func_code_string", "def f():\n    return 1\n"},
             {"func_documentation_string", "Return one."}};
  RecordFormat code(RecordKind::CodeSearchNet, "code"), pair(RecordKind::CodeSearchNet, "docstring-code");
  for (const json& j : {orig, hf}) {
    Example a = code.parse(j.dump(), "t");
    ASSERT_EQ(a.segments.size(), 1u);
    EXPECT_EQ(a.segments[0].text, "def f():\n    return 1\n");
    Example b = pair.parse(j.dump(), "t");
    EXPECT_EQ(joined(b, false), "Return one.\n");
    EXPECT_EQ(joined(b, true), "def f():\n    return 1\n");
    EXPECT_EQ(RecordFormat::detect(j), RecordKind::CodeSearchNet);
  }
}

TEST(Instruct, AlpacaUnnaturalChatHhOasst) {
  RecordFormat fmt(RecordKind::Auto, "code");
  Example a = fmt.parse(R"({"instruction":"Add.","input":"1 2","output":"3"})", "t");
  EXPECT_EQ(joined(a, false),
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n"
            "1 2\n\n### Response:\n");
  EXPECT_EQ(joined(a, true), "3");
  Example u = fmt.parse(R"({"instruction":"Add.","instances":[{"input":"1 2","output":"3"}]})", "t");
  EXPECT_EQ(joined(u, false), joined(a, false));
  EXPECT_EQ(joined(u, true), "3");

  Example c = fmt.parse(
      R"({"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}]})",
      "t");
  std::string all;
  for (const auto& s : c.segments) all += s.text;
  EXPECT_EQ(all,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n");
  EXPECT_EQ(joined(c, true), "A<|im_end|>\nA2<|im_end|>\n");

  Example hh = fmt.parse(R"({"chosen":"\n\nHuman: Hi?\n\nAssistant: Hello.","rejected":"x"})", "t");
  EXPECT_EQ(joined(hh, true), "Hello.<|im_end|>\n");
  Example oa = fmt.parse(R"({"messages":[{"role":"prompter","text":"Hi?"},{"role":"assistant","text":"Yo."}]})", "t");
  EXPECT_EQ(joined(oa, false), "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Instruct, PromptTokensAreMaskedOutOfTheLoss) {
  ScratchDir d;
  write_text(d.file("alpaca.jsonl"), R"({"instruction":"Say hi.","output":"Hello there, friend."})" "\n");
  StreamConfig cfg = in_order(d.file("alpaca.jsonl"), 128, 1);
  cfg.pack = false;
  Stream s(cfg, gpt2());
  Batch b = s.next();
  ASSERT_EQ(b.B, 1);
  std::vector<int32_t> predicted;
  for (int32_t t : b.targets)
    if (t != kIgnoreTarget) predicted.push_back(t);
  // Exactly the response and its end-of-text are predicted.
  EXPECT_EQ(gpt2()->decode(predicted), "Hello there, friend.<|endoftext|>");
  EXPECT_EQ(b.n_targets(), int64_t(predicted.size()));
  EXPECT_EQ(s.next().B, 0);
}

TEST(TokenShards, RoundTripUint16AndUint32) {
  ScratchDir d;
  std::vector<int32_t> ids = {0, 1, 50256, 65535, 7};
  for (int vocab : {50257, 128256}) {
    std::string p = d.file("s" + std::to_string(vocab) + ".bin");
    TokenShardWriter w(p, vocab);
    w.write(ids.data(), ids.size());
    w.close();
    EXPECT_EQ(std::filesystem::file_size(p), 1024u + ids.size() * (vocab > 65536 ? 4 : 2));
    TokenShardReader r(p);
    ASSERT_EQ(r.size(), int64_t(ids.size()));
    std::vector<int32_t> back(3);
    r.read(2, 3, back.data());
    EXPECT_EQ(back, (std::vector<int32_t>{50256, 65535, 7}));
    int32_t magic;
    std::ifstream(p, std::ios::binary).read(reinterpret_cast<char*>(&magic), 4);
    EXPECT_EQ(magic, vocab > 65536 ? 20240801 : 20240520);
  }
}

TEST(InputIds, EvalRowsPaddedToTheLongest) {
  ScratchDir d;
  write_text(d.file("eval.jsonl"), "{\"input_ids\":[5,6,7]}\n{\"input_ids\":[8,9,10,11,12]}\n{\"input_ids\":[1,2]}\n");
  // seq_len 4, shorter than a line: input_ids are used as they are, never cut
  StreamConfig cfg = in_order(d.file("eval.jsonl"), 4, 2);
  Stream s(cfg, gpt2());
  Batch b = s.next();
  ASSERT_EQ(b.B, 2);
  ASSERT_EQ(b.T, 5);
  EXPECT_EQ(std::vector<int32_t>(b.inputs.begin(), b.inputs.begin() + 3), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{6, 7, -100, -100, -100, 9, 10, 11, 12, -100}));
  Batch c = s.next();
  EXPECT_EQ(c.B, 1);
  EXPECT_EQ(c.targets, (std::vector<int32_t>{2, -100}));
  EXPECT_EQ(s.next().B, 0);
}

TEST(Instruct, ModelChatTemplateMasksThePrompt) {
  // SmolLM2-Instruct's template (tokenizer_config.json), which adds a default system turn.
  const std::string smollm2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' "
      "}}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  ScratchDir d;
  write_text(d.file("tokenizer_config.json"),
             nlohmann::json({{"chat_template", smollm2}, {"eos_token", "<|im_end|>"}}).dump());
  auto renderer = chat_renderer_for(d.path());
  RecordFormat fmt(RecordKind::Chat, "code", renderer);
  Example ex = fmt.parse(R"({"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]})", "t");
  EXPECT_EQ(joined(ex, false),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(joined(ex, true), "Hello!<|im_end|>\n");
  // No config: ChatML.
  EXPECT_NE(dynamic_cast<const ChatMLRenderer*>(chat_renderer_for(d.file("none")).get()), nullptr);
}
