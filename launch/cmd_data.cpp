// qtrain data inspect | shard: look at a corpus, or pre-tokenize it into .bin shards.
#include <climits>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "data/corpus_inspect.h"
#include "data/shard_writer.h"
#include "data/tokenizer.h"
#include "kernels/error.h"
#include "launch/commands.h"
#include "trainer/setup.h"

namespace qtrain::launch {

namespace {

struct DataOptions {
  std::string path, split, tokenizer, out, format = "auto", fields = "code", prefix = "data";
  int64_t shard_tokens = 100'000'000;
  bool skip_bad_lines = false, overwrite = false;
};

int run_inspect(const DataOptions& o) {
  std::cout << inspect_corpus(o.path, o.split).dump() << std::endl;
  return 0;
}

int run_shard(const DataOptions& o) {
  ShardJob job;
  job.path = o.path;
  job.split = o.split.empty() ? "train" : o.split;
  job.format = o.format;
  job.fields = o.fields;
  job.out_dir = o.out;
  job.prefix = o.prefix;
  job.shard_tokens = o.shard_tokens;
  job.skip_bad_lines = o.skip_bad_lines;
  job.overwrite = o.overwrite;
  if (o.shard_tokens < 1 || o.shard_tokens > INT32_MAX)
    throw Error("--shard-tokens must be in [1, 2^31): the .bin header stores the count as int32");
  std::shared_ptr<const Tokenizer> tok = load_tokenizer(o.tokenizer);
  ShardResult r = write_token_shards(job, tok);
  nlohmann::json j = {{"files", r.files}, {"documents", r.documents}, {"tokens", r.tokens}, {"bad_lines", r.bad_lines}};
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

void register_data(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<DataOptions>();
  auto* data = app.add_subcommand("data", "Inspect a corpus, or pre-tokenize it into .bin token shards");
  data->require_subcommand(1);

  auto* inspect = data->add_subcommand(
      "inspect",
      "Print one JSON line about a corpus: records (or tokens, for .bin) per split, malformed lines (with the "
      "first few named file:line), and the JSON fields seen.\n"
      "PATH: a CodeSearchNet tree (<root>/python/final/jsonl/{train,valid,test}/*.jsonl.gz), a directory of "
      ".jsonl/.jsonl.gz/.bin files (split by the names that mention train/valid/test; one split \"all\" when none "
      "does), or one file (split \"all\"). Exit 0 with malformed lines counted; a file that cannot be read exits 2.");
  inspect->add_option("path", opt->path, "Corpus file or directory")->required();
  inspect->add_option("--split", opt->split, "Only this split (default: every one found: train, valid, test)");
  inspect->callback([&run, opt] { run = [opt] { return run_inspect(*opt); }; });

  auto* shard = data->add_subcommand(
      "shard",
      "Tokenize one split, in file order, into llm.c-style .bin shards (256 x int32 header; uint16 tokens, or "
      "uint32 for vocabularies over 65536), each document followed by EOS (input_ids rows are written as they are, "
      "no EOS added). Files are named OUT/<prefix>_<split>_NNNNNN.bin, so `--data OUT --split <split>` trains on them. "
      "Loss masks of instruction data are not kept: shard plain text or code.");
  shard->add_option("path", opt->path, "Corpus file or directory")->required();
  shard->add_option("--tokenizer", opt->tokenizer,
                    std::string("Tokenizer: ") + kTokenizerForms + ". Use the model's: its EOS ends each document")
      ->required();
  shard->add_option("--out", opt->out, "Output directory (created if missing)")->required();
  shard->add_option("--split", opt->split,
                    "Split to shard (default train): a CodeSearchNet tree's <split>/ folder, or the files of a "
                    "directory whose names mention it (all of them when none mentions a split); a single file is "
                    "sharded whole and the split only names the output");
  shard->add_option("--format", opt->format,
                    "auto (each line by its fields) | codesearchnet | instruct | chat | text | input_ids")
      ->capture_default_str();
  shard->add_option("--fields", opt->fields, "CodeSearchNet text: code | docstring-code (the docstring, then the code)")
      ->capture_default_str();
  shard->add_option("--prefix", opt->prefix, "Shard file name prefix")->capture_default_str();
  shard->add_option("--shard-tokens", opt->shard_tokens,
                    "Tokens per shard file (a document is never split: a file ends after the one that reaches it)")
      ->capture_default_str();
  shard->add_flag("--skip-bad-lines", opt->skip_bad_lines,
                  "Skip malformed lines and count them (bad_lines in the output) instead of failing on the first "
                  "(default: fail, naming file:line, and write nothing)");
  shard->add_flag("--overwrite", opt->overwrite,
                  "Replace OUT's earlier <prefix>_<split>_*.bin shards (default: refuse, so that two corpora never mix "
                  "under one --data OUT); they are removed only after the new shards are complete");
  shard->callback([&run, opt] { run = [opt] { return run_shard(*opt); }; });
}

}  // namespace qtrain::launch
