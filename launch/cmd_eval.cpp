// qtrain eval: loss and perplexity of a model (optionally with a PEFT adapter),
// or multiple-choice accuracy (--task mc, trainer/mc_eval.h).
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
  std::string task = "ppl", dev, predictions;
  int shots = 5;
  int seq_len = 512, batch_size = 8;
  bool seq_len_given = false;
  int64_t max_batches = 0;
  bool grad_norms = false;
};

int run_mc(const EvalOptions& o, const McSet& set, Model& model, const Tokenizer* tok, Communicator& comm);

int run_eval(const EvalOptions& o) {
  if (o.task != "ppl" && o.task != "mc") throw Error("--task: '" + o.task + "' is not ppl or mc");
  if (o.task == "mc" && o.grad_norms) throw Error("--grad-norms works with --task ppl only");
  McSet mc_set;  // read before the model loads, so a bad file fails fast
  if (o.task == "mc") mc_set = read_mc_questions(o.data, o.dev, o.split);
  const Device device = resolve_device(o.device);
  set_attention_impl(parse_attention_impl(o.attention, "--attention"));
  auto comm = make_communicator(device, 300);
  LoadedModel lm = load_model(o.model);
  auto tok = make_tokenizer(lm.tokenizer, o.tokenizer, o.model);
  ModelOptions mo;
  mo.device = device;
  mo.method = o.method;  // quantized methods quantize the base on load, as training did (Model::create checks it)
  std::unique_ptr<PeftAdapter> adapter;
  if (!o.adapter.empty()) {
    adapter = std::make_unique<PeftAdapter>(read_peft_adapter(o.adapter));
    mo.lora = adapter->lora;
    mo.targets = adapter->modules;
  } else if (o.grad_norms) {
    if (o.method != "lora") throw Error("--grad-norms works on the dense base (--method lora)");
    mo.method = "full";  // gradients of every tensor
  } else {
    mo.targets = {};
  }
  auto model = Model::create(lm.config, *lm.weights, mo);
  if (adapter) apply_peft_adapter(*model, *adapter);
  if (o.task == "mc") return run_mc(o, mc_set, *model, tok.get(), *comm);
  StreamConfig sc;
  sc.path = o.data;
  sc.split = o.split;
  sc.format = o.format;
  sc.fields = o.fields;
  sc.seq_len = o.seq_len;
  sc.batch_size = o.batch_size;
  sc.rank = comm->rank();
  sc.world = comm->world();
  sc.shuffle = false;
  sc.loop = false;
  sc.vocab_size = lm.config.vocab_size;
  Stream stream(sc, tok);
  EvalResult r = evaluate(*model, stream, *comm, o.grad_norms, o.max_batches);
  if (comm->rank() == 0) {
    nlohmann::json j = {{"loss", r.loss}, {"ppl", r.ppl}, {"tokens", r.tokens}};
    if (o.grad_norms) j["grad_norms"] = r.grad_norms;
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

int run_mc(const EvalOptions& o, const McSet& set, Model& model, const Tokenizer* tok, Communicator& comm) {
  if (!tok) throw Error(o.model + ": has no tokenizer; pass --tokenizer");
  McOptions mo;
  mo.shots = o.shots;
  mo.batch_size = o.batch_size;
  // Without --seq-len the whole context of the model (5-shot MMLU prompts reach ~2k tokens).
  const int max_pos = model.config().max_pos > 0 ? model.config().max_pos : 4096;
  mo.max_tokens = o.seq_len_given ? std::min(o.seq_len, max_pos) : std::min(max_pos, 4096);
  McResult r = evaluate_mc(model, *tok, set, mo, comm);
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
  sub->add_option("--adapter", o->adapter, "PEFT LoRA adapter directory (from qtrain or peft)");
  sub->add_option("--method", o->method,
                  "how the base is held: lora (dense) | qlora | nf4-lora | qlora-fp4 | int8-lora (quantized on load, "
                  "as in training: evaluate a QLoRA adapter on the base it was trained with)")
      ->capture_default_str();
  sub->add_option("--max-batches", o->max_batches, "stop after this many batches (0 = the whole split)")
      ->capture_default_str();
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer to use instead of the model's");
  sub->add_option("--task", o->task, "ppl (loss and perplexity) | mc (multiple choice)")->capture_default_str();
  sub->add_option("--data", o->data,
                  "JSONL with input_ids (one sequence per line) or text, or a CodeSearchNet file/tree; for --task mc "
                  "MMLU-format JSONL (configs/mc/python-stdlib.jsonl is a small example)")
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
