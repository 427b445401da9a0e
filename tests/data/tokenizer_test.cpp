// The tokenizer against reference ids: GPT-2's cases.jsonl (from ../shared) and
// tokenizer.json fixtures made with HF tokenizers (tests/fixtures/data/make_tokenizer_fixtures.py).
#include <filesystem>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "data/pretokenize.h"
#include "data/unicode_classes.h"
#include "data/tokenizer.h"
#include "kernels/error.h"
#include <unistd.h>
#include "tests/test_util.h"

using namespace qtrain;
using nlohmann::json;

namespace {

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::vector<json> out;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string gpt2_dir() { return qtrain::testing::shared_dir() + "/data/gpt2-tokenizer"; }

}  // namespace

TEST(Tokenizer, Gpt2CasesExact) {
  auto tok = Tokenizer::load(gpt2_dir());
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  auto cases = read_jsonl(gpt2_dir() + "/cases.jsonl");
  ASSERT_EQ(cases.size(), 232u);
  int bad = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string text = cases[i]["text"];
    auto want = cases[i]["ids"].get<std::vector<int32_t>>();
    auto got = tok->encode(text);
    if (got != want && ++bad < 5) ADD_FAILURE() << "case " << i << ": " << json(text).dump().substr(0, 200);
    EXPECT_EQ(tok->decode(got), text) << "case " << i;
  }
  EXPECT_EQ(bad, 0);
}

TEST(Tokenizer, Gpt2KnownIdsAndSpecials) {
  auto tok = Tokenizer::load(gpt2_dir());
  // "Hello world" is [15496, 995] in GPT-2.
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  // Special tokens only where allowed: otherwise <|endoftext|> is plain text.
  auto plain = tok->encode("a<|endoftext|>b");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok->decode(plain), "a<|endoftext|>b");
  auto special = tok->encode("a<|endoftext|>b", true);
  EXPECT_EQ(special.size(), 3u);
  EXPECT_EQ(special[1], 50256);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 50256);
  EXPECT_FALSE(tok->token_id("no such token").has_value());
  EXPECT_THROW(tok->decode(std::vector<int32_t>{50257}), Error);
}

// Pieces of thousands of bytes take the heap-based BPE path; ids from tiktoken (make_long_pieces.py).
TEST(Tokenizer, LongPiecesMatchTiktoken) {
  auto tok = Tokenizer::load(gpt2_dir());
  auto cases = read_jsonl(qtrain::testing::fixture("data/long_pieces.jsonl"));
  ASSERT_EQ(cases.size(), 8u);
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string text = cases[i]["text"];
    EXPECT_EQ(tok->encode(text), cases[i]["ids"].get<std::vector<int32_t>>()) << "case " << i;
  }
}

// Random strings over tricky code points (all \s chars, format chars, marks, foreign digits); tiktoken ids.
TEST(Tokenizer, UnicodeMixMatchesTiktoken) {
  auto tok = Tokenizer::load(gpt2_dir());
  auto cases = read_jsonl(qtrain::testing::fixture("data/unicode_mix.jsonl"));
  ASSERT_EQ(cases.size(), 600u);
  int bad = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string text = cases[i]["text"];
    if (tok->encode(text) != cases[i]["ids"].get<std::vector<int32_t>>() && ++bad < 5)
      ADD_FAILURE() << "case " << i << ": " << cases[i]["text"].dump();
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
  EXPECT_EQ(bad, 0);
}

TEST(Tokenizer, RoundTripsArbitraryBytes) {
  auto tok = Tokenizer::load(gpt2_dir());
  std::string s;
  for (int i = 0; i < 256; ++i) s += char(i);
  s += "\xff\xfe invalid \xc3( utf8 \xe2\x82";
  EXPECT_EQ(tok->decode(tok->encode(s)), s);
}

// One tokenizer shared by threads (each with its own word cache) gives the reference ids.
TEST(Tokenizer, ThreadsShareOneTokenizer) {
  std::shared_ptr<const Tokenizer> tok = Tokenizer::load(gpt2_dir());
  auto cases = read_jsonl(gpt2_dir() + "/cases.jsonl");
  std::vector<int> bad(4, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = t; i < cases.size(); i += (rep == 1 ? 1 : 4))
          if (tok->encode(cases[i]["text"].get<std::string>()) != cases[i]["ids"].get<std::vector<int32_t>>())
            ++bad[t];
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  try {
    Tokenizer::load("/nonexistent/tok");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok"), std::string::npos);
  }
  EXPECT_THROW(Tokenizer::load(qtrain::testing::fixture("data")), Error);  // a dir with no tokenizer
}

// The inline ASCII fast path agrees with the generated tables (binary search).
TEST(Tokenizer, AsciiClassesMatchTables) {
  for (uint32_t c = 0; c < 128; ++c) EXPECT_EQ(unicode::classify(c), unicode::classify_non_ascii(c)) << c;
  EXPECT_EQ(unicode::classify(0x3000), unicode::CharClass::Space);
  EXPECT_EQ(unicode::classify(0x0663), unicode::CharClass::Number);
  EXPECT_EQ(unicode::classify(0x4E00), unicode::CharClass::Letter);
  EXPECT_EQ(unicode::classify(0x1C), unicode::CharClass::Other);  // not \s for `regex`
}

namespace {
// A temp dir with the given files; the error from loading it must mention `want`.
void expect_load_error(const std::vector<std::pair<std::string, std::string>>& files, const std::string& want) {
  auto dir = std::filesystem::temp_directory_path() / ("qtrain_tok_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (auto& [name, text] : files) std::ofstream(dir / name) << text;
  try {
    Tokenizer::load(dir.string());
    ADD_FAILURE() << "no error; wanted one mentioning " << want;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
std::string byte_vocab() {  // the 256 single-byte tokens of GPT-2's alphabet
  json v = json::object();
  for (int b = 0; b < 256; ++b) v[byte_level::encode(std::string(1, char(b)))] = b;
  return v.dump();
}
}  // namespace

TEST(Tokenizer, BadFilesGiveClearErrors) {
  expect_load_error({{"encoder.json", "{not json"}, {"vocab.bpe", ""}}, "encoder.json");
  expect_load_error({{"encoder.json", byte_vocab()}, {"vocab.bpe", "#version: 0.2\na b\nzz qq\n"}},
                    "vocab.bpe:3: merge 'zz qq'");
  expect_load_error({{"encoder.json", byte_vocab()}, {"vocab.bpe", "#version: 0.2\na b c\n"}}, "vocab.bpe:2");
  expect_load_error({{"encoder.json", R"({"a": 0})"}, {"vocab.bpe", ""}}, "no token for");
  expect_load_error({{"tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})"}}, "WordPiece");
  json tj = {{"model", {{"type", "BPE"}, {"vocab", json::parse(byte_vocab())}, {"merges", json::array()}}},
             {"pre_tokenizer", {{"type", "Metaspace"}}}};
  expect_load_error({{"tokenizer.json", tj.dump()}}, "unsupported pre_tokenizer");
  tj["pre_tokenizer"] = {{"type", "ByteLevel"}};
  tj["normalizer"] = {{"type", "NFC"}};
  expect_load_error({{"tokenizer.json", tj.dump()}}, "normalizer NFC");
}

TEST(Tokenizer, PreTokenizerPieces) {
  auto pieces = [](const std::string& s, PreTokenizer k) {
    std::vector<Piece> p;
    pretokenize(s, k, p);
    std::vector<std::string> out;
    for (auto& x : p) out.push_back(s.substr(x.begin, x.len));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("I'll go  now\n\n x", PreTokenizer::Gpt2), (V{"I", "'ll", " go", " ", " now", "\n\n", " x"}));
  EXPECT_EQ(pieces("x = 123", PreTokenizer::SmolLM), (V{"x", " =", " ", "1", "2", "3"}));
  EXPECT_EQ(pieces("x = 123", PreTokenizer::Gpt2), (V{"x", " =", " 123"}));
  EXPECT_THROW(pre_tokenizer_from_name("llama-bpe-unknown"), Error);
}

// tokenizer.json fixtures: ids from HF tokenizers for the same texts.
TEST(Tokenizer, TokenizerJsonMatchesHf) {
  for (std::string variant : {"bytelevel", "smollm"}) {
    auto tok = Tokenizer::load(qtrain::testing::fixture("data/tok_" + variant));
    auto cases = read_jsonl(qtrain::testing::fixture("data/tok_" + variant + "/expected.jsonl"));
    ASSERT_GT(cases.size(), 10u);
    EXPECT_EQ(tok->eos_id(), tok->token_id("<|im_end|>").value());  // from tokenizer_config.json
    EXPECT_EQ(tok->bos_id(), tok->token_id("<|im_start|>").value());
    for (size_t i = 0; i < cases.size(); ++i) {
      std::string text = cases[i]["text"];
      bool special = cases[i].value("special", false);
      auto want = cases[i]["ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok->encode(text, special), want) << variant << " case " << i << ": " << text.substr(0, 80);
      EXPECT_EQ(tok->decode(tok->encode(text)), text) << variant << " case " << i;
    }
  }
}

TEST(Tokenizer, SmolLMSplitsDigits) {
  auto byte_level = Tokenizer::load(qtrain::testing::fixture("data/tok_bytelevel/tokenizer.json"));
  auto smollm = Tokenizer::load(qtrain::testing::fixture("data/tok_smollm"));
  EXPECT_EQ(smollm->encode("1234").size(), 4u);
  EXPECT_NE(byte_level->encode("x = 1234"), smollm->encode("x = 1234"));
}

// The SmolLM fixture as GGUF would carry it (pre "smollm", added tokens as control) equals its tokenizer.json.
TEST(Tokenizer, FromVocabMergesSmolLM) {
  auto ref = Tokenizer::load(qtrain::testing::fixture("data/tok_smollm"));
  json j = qtrain::testing::fixture_json("data/tok_smollm/tokenizer.json");
  std::vector<std::string> tokens(j["model"]["vocab"].size());
  for (auto& [k, v] : j["model"]["vocab"].items()) tokens[v.get<int>()] = k;
  std::vector<int32_t> types(tokens.size(), 1);
  for (auto& at : j["added_tokens"]) types[at["id"].get<int>()] = 3;
  std::vector<std::string> merges;
  for (auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  auto tok = Tokenizer::from_vocab_merges(tokens, merges, types, "smollm", ref->bos_id(), ref->eos_id());
  for (auto& c : read_jsonl(qtrain::testing::fixture("data/tok_smollm/expected.jsonl")))
    EXPECT_EQ(tok->encode(c["text"].get<std::string>(), c["special"].get<bool>()),
              c["ids"].get<std::vector<int32_t>>());
}

TEST(Tokenizer, FromVocabMergesMatchesFiles) {
  // Build from the GPT-2 files as GGUF would carry them, compare with load().
  auto ref = Tokenizer::load(gpt2_dir());
  std::ifstream ef(gpt2_dir() + "/encoder.json");
  json enc = json::parse(ef);
  std::vector<std::string> tokens(enc.size());
  for (auto& [k, v] : enc.items()) tokens[v.get<int>()] = k;
  std::vector<int32_t> types(tokens.size(), 1);
  types[50256] = 3;
  std::ifstream mf(gpt2_dir() + "/vocab.bpe");
  std::vector<std::string> merges;
  std::string line;
  std::getline(mf, line);  // #version
  while (std::getline(mf, line))
    if (!line.empty()) merges.push_back(line);
  auto tok = Tokenizer::from_vocab_merges(tokens, merges, types, "gpt2", -1, 50256);
  std::string text = "def f(x):\n    return x**2  # square, ünïcödé 漢字 's";
  EXPECT_EQ(tok->encode(text), ref->encode(text));
  EXPECT_EQ(tok->encode("<|endoftext|>", true), (std::vector<int32_t>{50256}));
  EXPECT_THROW(Tokenizer::from_vocab_merges(tokens, merges, types, "nope", -1, 50256), Error);
}
