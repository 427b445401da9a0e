// qtrain eval: loss and perplexity of a model (optionally with a PEFT adapter).
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "dist/bootstrap.h"
#include "kernels/attention.h"
#include "launch/commands.h"
#include "trainer/evaluate.h"
#include "trainer/setup.h"

namespace qtrain::launch {

namespace {

struct EvalOptions {
  std::string model, adapter, tokenizer, data, split = "test", format = "auto", fields = "code", device = "auto";
  std::string attention = "auto";
  std::string method = "lora";
  int seq_len = 512, batch_size = 8;
  int64_t max_batches = 0;
  bool grad_norms = false;
};

int run_eval(const EvalOptions& o) {
  const Device device = resolve_device(o.device);
  set_attention_impl(parse_attention_impl(o.attention, "--attention"));
  auto comm = make_communicator(device, 300);
  ModelSpec ms;
  ms.model = o.model;
  ms.tokenizer = o.tokenizer;
  ms.device = device;
  ms.method = o.method;  // a quantized method quantizes the base on load, as training did
  ms.adapter = o.adapter;
  if (o.adapter.empty() && o.grad_norms) {
    if (find_method(o.method).quantizes_base())
      throw Error("--grad-norms without --adapter takes gradients of every base tensor: it needs a dense base, not --method " +
                  o.method);
    ms.method = "full";  // gradients of every tensor
  } else if (o.adapter.empty()) {
    ms.targets = {};  // the base alone
  }
  BuiltModel built = build_model(ms);
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

}  // namespace

void register_eval(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("eval",
                                 "Mean next-token loss and perplexity over a data split (HF convention), printed as one "
                                 "JSON line {\"loss\", \"ppl\", \"tokens\"}.");
  add_config_option(*sub);
  auto o = std::make_shared<EvalOptions>();
  sub->add_option("--model", o->model, "HF model directory, .gguf file, or registered name")->required();
  sub->add_option("--adapter", o->adapter, "PEFT LoRA adapter directory (from qtrain or peft)");
  sub->add_option("--method", o->method,
                  "how the base is held, as in training (evaluate a QLoRA adapter on the base it was trained with): " +
                      method_list())
      ->capture_default_str();
  sub->add_option("--max-batches", o->max_batches, "stop after this many batches (0 = the whole split)")
      ->capture_default_str();
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer to use instead of the model's");
  sub->add_option("--data", o->data,
                  "JSONL with input_ids (one sequence per line) or text, or a CodeSearchNet file/tree")
      ->required();
  sub->add_option("--split", o->split, "split of a CodeSearchNet tree")->capture_default_str();
  sub->add_option("--format", o->format, "auto|codesearchnet|instruct|chat|text|input_ids|bin")->capture_default_str();
  sub->add_option("--fields", o->fields, "CodeSearchNet text: code | docstring-code")->capture_default_str();
  sub->add_option("--seq-len", o->seq_len, "window for text data")->capture_default_str();
  sub->add_option("--batch-size", o->batch_size, "rows per forward")->capture_default_str();
  sub->add_option("--device", o->device, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--attention", o->attention, "GPU attention: auto | cudnn | own (see train --help)")
      ->capture_default_str();
  sub->add_flag("--grad-norms", o->grad_norms,
                "also print the L2 norm of the gradient of the mean loss for each trainable tensor (the adapter's, "
                "else every tensor)");
  sub->callback([&run, o] { run = [o] { return run_eval(*o); }; });
}

}  // namespace qtrain::launch
