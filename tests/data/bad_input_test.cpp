// Bad input: each case gives a qtrain::Error naming the file and line (or
// token), or is counted with skip_bad_lines — never a crash or a hang.
#include <random>

#include "data/gz_lines.h"
#include "data/record_format.h"
#include "data/stream.h"
#include "data/token_shards.h"
#include "tests/data/data_files.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

StreamConfig one_pass(const std::string& path) {
  StreamConfig c = in_order(path, 16, 2);
  c.prefetch = 2;
  return c;
}

// Runs the stream to its end; returns the error message ("" when none).
std::string drain_error(const StreamConfig& c) {
  try {
    Stream s(c, gpt2());
    for (int i = 0; i < 100000; ++i)
      if (s.next().B == 0) return "";
    return "did not end";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    return e.what();
  }
}

std::string read_error(const std::string& path) {
  try {
    LineReader r(path);
    std::string_view l;
    while (r.next(l)) {
    }
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

std::string good_lines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "{\"text\":\"line " + std::to_string(i) + " of some text to compress\"}\n";
  return s;
}

}  // namespace

TEST(BadInput, TruncatedGzip) {
  ScratchDir d;
  write_gz(d.file("full.jsonl.gz"), good_lines(5000));
  std::string bytes = read_bytes(d.file("full.jsonl.gz"));
  write_text(d.file("cut.jsonl.gz"), bytes.substr(0, bytes.size() / 2));
  std::string e = read_error(d.file("cut.jsonl.gz"));
  EXPECT_NE(e.find("cut.jsonl.gz"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated gzip"), std::string::npos) << e;
  EXPECT_NE(e.find("after line"), std::string::npos) << e;
  EXPECT_NE(drain_error(one_pass(d.file("cut.jsonl.gz"))).find("truncated gzip"), std::string::npos);
}

// A directory where a JSONL file is expected (--data DIR/, --prompts DIR) opens
// on Linux and fails on the first read: the error says what it is, as bad input.
TEST(BadInput, DirectoryInsteadOfFile) {
  ScratchDir d;
  try {
    LineReader r(d.path());
    FAIL() << "no error for a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(d.path() + ": is a directory"), std::string::npos) << e.what();
  }
}

TEST(BadInput, CorruptGzip) {
  ScratchDir d;
  write_gz(d.file("full.jsonl.gz"), good_lines(5000));
  std::string bytes = read_bytes(d.file("full.jsonl.gz"));
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 64; ++i) bytes[i] = char(bytes[i] ^ 0x5A);
  write_text(d.file("bad.jsonl.gz"), bytes);
  std::string e = read_error(d.file("bad.jsonl.gz"));
  EXPECT_NE(e.find("bad.jsonl.gz"), std::string::npos) << e;
  EXPECT_NE(e.find("gzip"), std::string::npos) << e;
}

// A .gz that is not gzip at all (a plain or binary file given the name) was read as plain
// text: random bytes came out as 'line 9: invalid UTF-8', a plain JSONL file trained silently.
// The name promises gzip, so the error says the file is not gzip.
TEST(BadInput, GzNameButNotGzip) {
  ScratchDir d;
  std::string junk(4096, '\0');
  std::mt19937 rng(1);
  for (auto& c : junk) c = char(rng() | 0x80);
  write_text(d.file("junk.jsonl.gz"), junk);
  write_text(d.file("plain.jsonl.gz"), good_lines(3));
  for (const char* name : {"junk.jsonl.gz", "plain.jsonl.gz"}) {
    std::string e = read_error(d.file(name));
    EXPECT_NE(e.find(std::string(name) + ": not gzip data"), std::string::npos) << e;
    EXPECT_NE(drain_error(one_pass(d.file(name))).find("not gzip data"), std::string::npos) << name;
  }
}

TEST(BadInput, MalformedJsonLineNamedOrSkipped) {
  ScratchDir d;
  write_text(d.file("m.jsonl"), good_lines(2) + "{\"text\": \"unterminated\n" + good_lines(3));
  std::string e = drain_error(one_pass(d.file("m.jsonl")));
  EXPECT_NE(e.find("m.jsonl:3"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed JSON"), std::string::npos) << e;
  StreamConfig c = one_pass(d.file("m.jsonl"));
  c.skip_bad_lines = true;
  Stream s(c, gpt2());
  while (s.next().B > 0) {
  }
  EXPECT_EQ(s.bad_lines(), 1);
}

TEST(BadInput, MissingFields) {
  ScratchDir d;
  write_text(d.file("a.jsonl"), "{\"instruction\":\"do\",\"output\":\"ok\"}\n{\"instruction\":\"no output\"}\n");
  StreamConfig c = one_pass(d.file("a.jsonl"));
  c.format = "instruct";
  std::string e = drain_error(c);
  EXPECT_NE(e.find("a.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'output'"), std::string::npos) << e;
  write_text(d.file("u.jsonl"), "{\"foo\":1,\"bar\":2}\n");
  e = drain_error(one_pass(d.file("u.jsonl")));
  EXPECT_NE(e.find("u.jsonl:1"), std::string::npos) << e;
  EXPECT_NE(e.find("saw: bar, foo"), std::string::npos) << e;
}

// The loss of a chat record is on its assistant turns only. A record without one (a role
// spelled "Assistant" or "model", or a prompt-only dump) trained nothing: a whole file of them
// ran to the end with loss 0, gradient 0, and wrote an unchanged adapter with exit 0.
TEST(BadInput, ChatWithoutAssistantTurn) {
  ScratchDir d;
  write_text(d.file("c.jsonl"),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n"
             "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"Assistant\",\"content\":\"a\"}]}\n");
  std::string e = drain_error(one_pass(d.file("c.jsonl")));
  EXPECT_NE(e.find("c.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("no 'assistant' turn"), std::string::npos) << e;
  EXPECT_NE(e.find("Assistant"), std::string::npos) << e;  // the roles it saw
  StreamConfig c = one_pass(d.file("c.jsonl"));
  c.skip_bad_lines = true;
  Stream s(c, gpt2());
  while (s.next().B > 0) {
  }
  EXPECT_EQ(s.bad_lines(), 1);
}

TEST(BadInput, InvalidUtf8) {
  ScratchDir d;
  write_text(d.file("u.jsonl"), good_lines(1) + "{\"text\":\"caf\xC3\x28 bad\"}\n");
  std::string e = drain_error(one_pass(d.file("u.jsonl")));
  EXPECT_NE(e.find("u.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid UTF-8 at byte 12"), std::string::npos) << e;
}

TEST(BadInput, BinWrongMagic) {
  ScratchDir d;
  std::string header(1024, '\0');
  int32_t h[3] = {12345, 1, 0};
  std::memcpy(header.data(), h, sizeof(h));
  write_text(d.file("x.bin"), header);
  try {
    TokenShardReader r(d.file("x.bin"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.bin: not a token shard: header magic 12345"), std::string::npos) << e.what();
  }
  write_text(d.file("short.bin"), "abc");
  EXPECT_NE(drain_error(one_pass(d.file("short.bin"))).find("short.bin"), std::string::npos);
  // A header whose count disagrees with the file size.
  int32_t h2[3] = {20240520, 1, 100};
  std::memcpy(header.data(), h2, sizeof(h2));
  write_text(d.file("y.bin"), header + std::string(20, '\0'));
  EXPECT_NE(drain_error(one_pass(d.file("y.bin"))).find("header says 100 tokens"), std::string::npos);
}

TEST(BadInput, TokenIdAtOrAboveVocabSize) {
  ScratchDir d;
  write_text(d.file("ids.jsonl"), "{\"input_ids\":[1,2,3]}\n{\"input_ids\":[4,50257,6]}\n");
  std::string e = drain_error(one_pass(d.file("ids.jsonl")));
  EXPECT_NE(e.find("ids.jsonl:2: input_ids[1] = 50257 is >= the vocabulary size 50257"), std::string::npos) << e;
  TokenShardWriter w(d.file("t.bin"), 50257);
  std::vector<int32_t> ids(40, 11);
  ids[33] = 60000;  // fits uint16, not the vocabulary
  w.write(ids.data(), ids.size());
  w.close();
  e = drain_error(one_pass(d.file("t.bin")));
  EXPECT_NE(e.find("t.bin: token 33 is 60000"), std::string::npos) << e;
}

TEST(BadInput, EmptySplit) {
  ScratchDir d;
  std::filesystem::create_directories(d.file("python/final/jsonl/train"));
  write_gz(d.file("python/final/jsonl/train/python_train_0.jsonl.gz"), good_lines(3));
  StreamConfig c = one_pass(d.path());
  c.split = "valid";
  std::string e = drain_error(c);
  EXPECT_NE(e.find("no data files for split 'valid'"), std::string::npos) << e;
  write_text(d.file("empty.jsonl"), "\n\n");
  e = drain_error(one_pass(d.file("empty.jsonl")));
  EXPECT_NE(e.find("yields no rows"), std::string::npos) << e;
}

TEST(BadInput, RandomAndHostileLinesNeverCrash) {
  // Mutated records, deep nesting and wrong types: each line either parses or
  // is a qtrain::Error (BadInput) naming its place; nothing else escapes.
  RecordFormat fmt(RecordKind::Auto, "docstring-code");
  std::vector<std::string> seeds = {
      R"({"instruction":"a","input":"b","output":"c"})",
      R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})",
      R"({"code":"def f(): pass","docstring":"d"})",
      R"({"input_ids":[1,2,3]})",
      R"({"chosen":"\n\nHuman: a\n\nAssistant: b"})",
      R"({"instruction":"x","instances":[1,2]})",
      R"({"messages":"no"})",
      R"({"messages":[{"role":1,"content":[]}]})",
      R"({"input_ids":[1.5,"a",-4]})",
      R"({"code":null,"text":{"a":1}})",
  };
  EXPECT_THROW(fmt.parse(std::string(200000, '[') + std::string(200000, ']'), "deep"), Error);
  EXPECT_THROW(fmt.parse("{\"text\":" + std::string(100000, '[') + std::string(100000, ']') + "}", "deep"), Error);
  std::mt19937 rng(5);
  int ok = 0, errors = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string line = seeds[rng() % seeds.size()];
    int edits = int(rng() % 4);
    for (int e = 0; e < edits && !line.empty(); ++e) {
      size_t at = rng() % line.size();
      switch (rng() % 3) {
        case 0: line[at] = char(rng() % 256); break;
        case 1: line.erase(at, 1 + rng() % 8); break;
        default: line.insert(at, 1, "{}[]\",:\\"[rng() % 8]);
      }
    }
    try {
      fmt.parse(line, "fuzz:" + std::to_string(round));
      ++ok;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find("fuzz:" + std::to_string(round)), std::string::npos) << e.what();
      ++errors;
    }
  }
  EXPECT_GT(ok, 100);
  EXPECT_GT(errors, 100);
}
