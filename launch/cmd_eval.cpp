// qtrain eval: loss and perplexity of a model (optionally with a PEFT adapter),
// or multiple-choice accuracy (--task mc, trainer/mc_eval.h).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "dist/bootstrap.h"
#include "kernels/attention.h"
#include "launch/commands.h"
#include "trainer/evaluate.h"
#include "trainer/mc_eval.h"
#include "trainer/setup.h"

namespace qtrain::launch {

namespace {

struct EvalOptions {
  std::string model, adapter, tokenizer, data, split = "test", format = "auto", fields = "code", device = "auto";
  std::string attention = "auto";
  std::string method = "lora";
  BaseFlags base;
  std::string task = "ppl", dev, predictions;
  int shots = 5;
  int seq_len = 512, batch_size = 8;
  bool seq_len_given = false;
  int64_t max_batches = 0;
  bool grad_norms = false;
};

int run_mc(const EvalOptions& o, const McSet& set, BuiltModel& built, Communicator& comm);

// --predictions is written after the whole evaluation: a path that cannot be
// written is refused before it starts, not after the run (and no file is made).
void check_predictions_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path parent = fs::absolute(path, ec).parent_path();
  if (fs::is_directory(path, ec)) throw Error("--predictions " + path + ": is a directory; give a file path");
  if (!fs::is_directory(parent, ec))
    throw Error("--predictions " + path + ": directory " + parent.string() + " does not exist");
}

int run_eval(const EvalOptions& o) {
  if (o.task != "ppl" && o.task != "mc") throw Error("--task: '" + o.task + "' is not ppl or mc");
  if (o.task == "mc" && o.grad_norms) throw Error("--grad-norms works with --task ppl only");
  if (o.max_batches < 0)
    throw Error("--max-batches must be >= 0 (0 = the whole split), got " + std::to_string(o.max_batches));
  McSet mc_set;  // read before the model loads, so a bad file fails fast
  if (o.task == "mc") mc_set = read_mc_questions(o.data, o.dev, o.split);
  if (!o.predictions.empty()) check_predictions_path(o.predictions);
  const Device device = resolve_device(o.device);
  set_attention_impl(parse_attention_impl(o.attention, "--attention"));
  auto comm = make_communicator(device, 300);
  ModelSpec ms;
  ms.model = o.model;
  ms.tokenizer = o.tokenizer;
  ms.device = device;
  ms.method = o.method;  // a quantized method quantizes the base on load, as training did
  apply_base_flags(o.base, ms);
  ms.adapter = o.adapter;
  warn_if_base_differs(ms);
  if (o.adapter.empty() && o.grad_norms) {
    if (find_method(o.method).quantizes_base())
      throw Error("--grad-norms without --adapter takes gradients of every base tensor: it needs a dense base, not --method " +
                  o.method);
    ms.method = "full";  // gradients of every tensor
  } else if (o.adapter.empty()) {
    ms.targets = {};  // the base alone
  }
  BuiltModel built = build_model(ms);
  if (o.task == "mc") return run_mc(o, mc_set, built, *comm);
  StreamSpec ss;
  ss.path = o.data;
  ss.split = o.split;
  ss.format = o.format;
  ss.fields = o.fields;
  ss.seq_len = o.seq_len;
  ss.batch_size = o.batch_size;
  ss.train = false;
  Stream stream(make_stream_config(ss, built, *comm), built.tokenizer);
  EvalResult r = evaluate(*built.model, stream, *comm, o.grad_norms, o.max_batches);
  if (comm->rank() == 0) {
    nlohmann::json j = {{"loss", r.loss}, {"ppl", r.ppl}, {"tokens", r.tokens}};
    if (o.grad_norms) j["grad_norms"] = r.grad_norms;
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

int run_mc(const EvalOptions& o, const McSet& set, BuiltModel& built, Communicator& comm) {
  if (!built.tokenizer) throw Error(o.model + ": has no tokenizer; pass --tokenizer");
  McOptions mo;
  mo.shots = o.shots;
  mo.batch_size = o.batch_size;
  // Without --seq-len the whole context of the model (5-shot MMLU prompts reach ~2k tokens).
  const int max_pos = built.model->config().max_pos > 0 ? built.model->config().max_pos : 4096;
  mo.max_tokens = o.seq_len_given ? std::min(o.seq_len, max_pos) : std::min(max_pos, 4096);
  McResult r = evaluate_mc(*built.model, *built.tokenizer, set, mo, comm);
  if (comm.rank() != 0) return 0;
  if (!o.predictions.empty()) {
    std::ofstream f(o.predictions);
    for (size_t i = 0; i < r.scores.size(); ++i) {
      const McQuestion& q = set.questions[i];
      const McScore& s = r.scores[i];
      f << nlohmann::json({{"subject", q.subject}, {"answer", q.answer}, {"pred", s.pred}, {"loglik", s.loglik},
                           {"shots", s.shots}, {"cut", s.cut}})
               .dump()
        << "\n";
    }
    if (!f.flush()) throw Error(o.predictions + ": cannot write", ErrorKind::Runtime);
  }
  std::cout << r.to_json(mo).dump() << std::endl;
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "eval",
      "--task ppl (default): mean next-token loss and perplexity over a data split (HF convention), printed as one "
      "JSON line {\"loss\", \"ppl\", \"tokens\"}.\n--task mc: k-shot multiple-choice accuracy on MMLU-format JSONL "
      "({question, choices, answer, subject, split}), each choice scored by the log-likelihood of its letter as the "
      "standard MMLU harness does; prints {\"accuracy\", \"n\", \"subjects\": {name: {accuracy, n}}, \"truncated\"}.");
  add_config_option(*sub);
  auto o = std::make_shared<EvalOptions>();
  sub->add_option("--model", o->model, "HF model directory, .gguf file, or registered name")->required();
  sub->add_option("--adapter", o->adapter, "PEFT adapter directory (from qtrain or peft), or a llama.cpp LoRA adapter .gguf");
  sub->add_option("--method", o->method,
                  "how the base is held, as in training (evaluate a QLoRA adapter on the base it was trained with): " +
                      method_list())
      ->capture_default_str();
  add_base_flags(*sub, o->base);
  sub->add_option("--max-batches", o->max_batches, "stop after this many batches (0 = the whole split)")
      ->capture_default_str();
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer to use instead of the model's: a dir, tokenizer.json, .gguf file or registered model name");
  sub->add_option("--task", o->task, "ppl (loss and perplexity) | mc (multiple choice)")->capture_default_str();
  sub->add_option("--data", o->data,
                  "the formats train --data reads (a CodeSearchNet tree, .jsonl(.gz) of code, text, input_ids, "
                  "instruction or chat records, .bin token shards; see --format); for --task mc MMLU-format JSONL "
                  "(configs/mc/python-stdlib.jsonl is a small example)")
      ->required();
  sub->add_option("--split", o->split,
                  "split of a CodeSearchNet tree; for --task mc the rows scored are those with this split or none")
      ->capture_default_str();
  sub->add_option("--shots", o->shots,
                  "--task mc: dev examples of the same subject before each question (dropped from the last while the "
                  "prompt exceeds --seq-len; counted in \"truncated\")")
      ->capture_default_str();
  sub->add_option("--dev", o->dev,
                  "--task mc: JSONL whose rows are the shots (default: the rows of --data with \"split\": \"dev\")");
  sub->add_option("--predictions", o->predictions,
                  "--task mc: also write one JSON line per question (subject, answer, pred, loglik per choice, shots)");
  sub->add_option("--format", o->format, "auto|codesearchnet|instruct|chat|text|input_ids|bin")->capture_default_str();
  sub->add_option("--fields", o->fields, "CodeSearchNet text: code | docstring-code")->capture_default_str();
  sub->add_option("--seq-len", o->seq_len,
                  "window for text data; for --task mc the prompt limit (default: the model's context, at most 4096)")
      ->capture_default_str();
  sub->add_option("--batch-size", o->batch_size, "rows per forward")->capture_default_str();
  sub->add_option("--device", o->device, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--attention", o->attention, "GPU attention: auto | cudnn | own (see train --help)")
      ->capture_default_str();
  sub->add_flag("--grad-norms", o->grad_norms,
                "also print the L2 norm of the gradient of the mean loss for each trainable tensor (the adapter's, "
                "else every tensor)");
  sub->callback([&run, o, sub] {
    o->seq_len_given = sub->count("--seq-len") > 0;
    run = [o] { return run_eval(*o); };
  });
}

}  // namespace qtrain::launch
