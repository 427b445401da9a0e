// Instruction data (tests/fixtures/data/alpaca-tiny.jsonl): the loss is on the
// response and its EOS only, and QLoRA's source_max_len / target_max_len cut
// the prompt and the response each to its own length, keeping their first
// tokens, before joining them (qlora.py's DataCollatorForCausalLM).
#include <fstream>

#include "data/record_format.h"
#include "data/stream.h"
#include "tests/data/data_files.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

std::string alpaca_file() { return fixture("data/alpaca-tiny.jsonl"); }

// Each record's prompt and response tokens, tokenized apart as QLoRA does.
struct Pair {
  std::vector<int32_t> source, target;  // target ends with EOS
};

std::vector<Pair> expected_pairs() {
  RecordFormat fmt(RecordKind::Instruct, "code");
  std::ifstream f(alpaca_file());
  std::vector<Pair> out;
  std::string line;
  while (std::getline(f, line)) {
    Example ex = fmt.parse(line, "alpaca");
    EXPECT_EQ(ex.segments.size(), 2u);
    Pair p;
    p.source = gpt2()->encode(ex.segments[0].text);
    p.target = gpt2()->encode(ex.segments[1].text);
    p.target.push_back(gpt2()->eos_id());
    out.push_back(p);
  }
  return out;
}

// One row per record, in file order: its tokens and its predicted targets.
std::vector<Batch> rows(int source_max, int target_max) {
  StreamConfig c = in_order(alpaca_file(), 256, 1);
  c.format = "instruct";
  c.pack = false;
  c.source_max_len = source_max;
  c.target_max_len = target_max;
  Stream s(c, gpt2());
  std::vector<Batch> out;
  for (Batch b = s.next(); b.B > 0; b = s.next()) out.push_back(b);
  return out;
}

}  // namespace

TEST(InstructLengths, LossOnlyOnTheResponseAndItsEos) {
  auto want = expected_pairs();
  auto got = rows(0, 0);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Batch& b = got[i];
    const Pair& p = want[i];
    const size_t n = p.source.size() + p.target.size();
    ASSERT_LE(n, size_t(b.T));
    std::vector<int32_t> row(b.inputs.begin(), b.inputs.begin() + long(n));
    std::vector<int32_t> joined = p.source;
    joined.insert(joined.end(), p.target.begin(), p.target.end());
    EXPECT_EQ(row, joined) << "record " << i;
    // Position t predicts token t+1: only the response tokens (and EOS) are targets.
    for (size_t t = 0; t + 1 < size_t(b.T); ++t) {
      const bool in_target = t + 1 >= p.source.size() && t + 1 < n;
      EXPECT_EQ(b.targets[t], in_target ? b.inputs[t + 1] : kIgnoreTarget) << "record " << i << " position " << t;
    }
  }
}

TEST(InstructLengths, SourceAndTargetCutEachToItsOwnLength) {
  const int S = 40, T = 12;
  auto want = expected_pairs();
  auto got = rows(S, T);
  ASSERT_EQ(got.size(), want.size());
  int sources_cut = 0, targets_cut = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const Pair& p = want[i];
    std::vector<int32_t> src(p.source.begin(), p.source.begin() + std::min<long>(S, long(p.source.size())));
    std::vector<int32_t> tgt(p.target.begin(), p.target.begin() + std::min<long>(T, long(p.target.size())));
    sources_cut += src.size() < p.source.size();
    targets_cut += tgt.size() < p.target.size();
    std::vector<int32_t> joined = src;
    joined.insert(joined.end(), tgt.begin(), tgt.end());
    const Batch& b = got[i];
    // Unpacked rows are padded to the longest row of the batch (here the row itself).
    ASSERT_EQ(size_t(b.T), joined.size()) << "record " << i;
    EXPECT_EQ(b.inputs, joined) << "record " << i;
    EXPECT_EQ(b.n_targets(), int64_t(tgt.size())) << "record " << i;
  }
  // The file has prompts longer than S and responses longer than T (and shorter ones).
  EXPECT_GT(sources_cut, 0);
  EXPECT_LT(sources_cut, int(want.size()));
  EXPECT_GT(targets_cut, 0);
  EXPECT_LT(targets_cut, int(want.size()));
}

TEST(InstructLengths, LimitsAreCheckedAndPartOfTheStreamState) {
  StreamConfig c;
  c.path = alpaca_file();
  c.format = "instruct";
  c.seq_len = 128;
  c.batch_size = 2;
  c.source_max_len = -1;
  EXPECT_THROW(Stream(c, gpt2()), Error);
  c.source_max_len = 40;
  Stream a(c, gpt2());
  a.next();
  nlohmann::json st = a.state();
  c.source_max_len = 0;  // other limits give other rows: a resume must not silently change them
  Stream b(c, gpt2());
  EXPECT_THROW(b.restore(st), Error);
  st.erase("source_max_len");
  st.erase("target_max_len");  // a state from before the limits existed
  EXPECT_NO_THROW(b.restore(st));
}
