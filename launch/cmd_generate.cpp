// qtrain generate: continue a prompt, or chat, with a model (optionally with a
// PEFT adapter), streaming the text to stdout as it is made; or continue every
// prompt of a JSONL file, several at a time in one batched KV cache.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/chat_format.h"
#include "data/token_text_stream.h"
#include "kernels/attention.h"
#include "launch/commands.h"
#include "models/merged_model.h"
#include "models/method.h"
#include "trainer/generate.h"
#include "trainer/generate_batch.h"
#include "trainer/prompt_file.h"
#include "trainer/setup.h"

namespace fs = std::filesystem;

namespace qtrain::launch {

namespace {

struct GenerateCliOptions {
  std::string model, adapter, tokenizer, method = "lora", device = "auto", attention = "auto";
  BaseFlags base;
  std::string prompt, prompt_ids, prompts, system;
  bool has_prompt = false, has_prompt_ids = false, has_prompts = false, chat = false, ids = false, ignore_eos = false,
       merge = false;
  bool no_cuda_graph = false;
  int max_new_tokens = 128;
  int batch_size = 8;  // with --prompts
  int warmup = 0;      // untimed runs of the prompt before the timed one
  SamplingOptions sampling;
};

// "1, 2,3" -> {1, 2, 3}; anything else is an error naming the flag.
std::vector<int32_t> parse_ids(const std::string& s, int vocab) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    while (used < item.size() && item[used] == ' ') ++used;
    if (used != item.size() || item.find_first_not_of(' ') == std::string::npos)
      throw Error("--prompt-ids: '" + item + "' is not a token id (expected e.g. \"1,2,3\")");
    if (v < 0 || v >= vocab)
      throw Error("--prompt-ids: id " + std::to_string(v) + " is outside the model's vocabulary [0, " +
                  std::to_string(vocab) + ")");
    out.push_back(int32_t(v));
  }
  return out;
}

// The model directory an HF model was loaded from ("" for GGUF and synthetic models).
std::string hf_model_dir(const ModelConfig& cfg) {
  fs::path p(cfg.source);
  return p.filename() == "config.json" ? p.parent_path().string() : std::string();
}

// The model as every subcommand builds it (build_model): the base held as
// --method says, the adapter unmerged, or with --merge folded into the base.
BuiltModel build_inference_model(const GenerateCliOptions& o, Device device) {
  if (o.merge && o.adapter.empty()) throw Error("--merge needs an --adapter to merge");
  ModelSpec spec;
  spec.model = o.model;
  spec.tokenizer = o.tokenizer;
  spec.method = o.method;
  apply_base_flags(o.base, spec);
  spec.adapter = o.adapter;
  warn_if_base_differs(spec);
  spec.device = o.merge ? Device::CPU : device;  // merged on the host, then held on the device as --method says
  if (o.adapter.empty()) spec.targets = {};      // the base alone
  BuiltModel b = build_model(spec);
  if (o.merge) {
    ModelOptions mo = b.model->options();
    mo.device = device;
    b.model = merge_adapters_into_base(*b.model, mo);
  }
  return b;
}

void add_stop(std::vector<int32_t>& stops, int32_t id) {
  if (id >= 0 && std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
}

class GenerateCommand {
 public:
  explicit GenerateCommand(const GenerateCliOptions& o) : o_(o) {}

  int run() {
    check_sampling_options(o_.sampling);
    if (o_.max_new_tokens < 1)
      throw Error("--max-new-tokens must be at least 1, got " + std::to_string(o_.max_new_tokens));
    if (o_.batch_size < 1) throw Error("--batch-size must be at least 1, got " + std::to_string(o_.batch_size));
    if (o_.warmup < 0) throw Error("--warmup must be 0 or more, got " + std::to_string(o_.warmup));
    if (o_.warmup > 0 && (o_.has_prompts || (o_.chat && !o_.has_prompt && isatty(STDIN_FILENO))))
      throw Error("--warmup times one prompt (--prompt, --prompt-ids or stdin), not --prompts or an interactive chat");
    const Device device = resolve_device(o_.device);
    set_attention_impl(parse_attention_impl(o_.attention, "--attention"));
    built_ = build_inference_model(o_, device);
    const bool needs_text = !o_.ids || o_.chat || (!o_.has_prompt_ids && !o_.has_prompts);
    if (needs_text && !built_.tokenizer)
      throw Error("--model " + o_.model + " has no tokenizer: give --tokenizer PATH (or --prompt-ids with --ids)");

    GenerateOptions& go = go_;
    go.max_new_tokens = o_.max_new_tokens;
    go.sampling = o_.sampling;
    if (!o_.ignore_eos) {
      std::string dir = hf_model_dir(built_.loaded.config);
      if (!dir.empty()) go.stop_ids = hf_eos_ids(dir);
      add_stop(go.stop_ids, built_.loaded.config.eos_id);
      add_stop(go.stop_ids, built_.loaded.tokenizer.eos_id);
    }
    if (o_.chat) {
      chat_ = chat_renderer();
      if (auto eot = end_of_turn_token(*chat_, *built_.tokenizer); eot && !o_.ignore_eos) add_stop(go.stop_ids, *eot);
    }
    built_.model->set_decode_graphs(!o_.no_cuda_graph);
    gen_ = std::make_unique<Generator>(*built_.model, go);

    if (o_.has_prompts) return run_prompt_file();
    if (o_.chat && !o_.has_prompt && isatty(STDIN_FILENO)) return interactive_chat();
    std::vector<int32_t> prompt;
    if (o_.has_prompt_ids) {
      prompt = parse_ids(o_.prompt_ids, built_.loaded.config.vocab_size);
    } else {
      std::string text = o_.has_prompt ? o_.prompt : read_stdin();
      if (o_.chat && !o_.has_prompt && !text.empty() && text.back() == '\n') text.pop_back();  // echo's newline
      prompt = o_.chat ? chat_ids(text) : built_.tokenizer->encode(text, true);
    }
    if (o_.warmup > 0) {
      check_prompt(prompt);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < o_.warmup; ++i) gen_->warm_up(prompt);
      std::fprintf(stderr, "[generate] warmup: %d untimed run%s of the prompt in %.1f ms\n", o_.warmup,
                   o_.warmup == 1 ? "" : "s",
                   std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    run_one(prompt);
    return 0;
  }

 private:
  std::string prompt_flag() const { return o_.has_prompt_ids ? "--prompt-ids" : "--prompt"; }

  std::string read_stdin() const {
    if (isatty(STDIN_FILENO)) throw Error("give --prompt TEXT, --prompt-ids, or --chat (or pipe the prompt to stdin)");
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }

  // The model's own template (as training renders chat data); ChatML when it has none.
  std::shared_ptr<const ChatRenderer> chat_renderer() const {
    if (auto r = model_chat_renderer(built_)) return r;
    std::fprintf(stderr, "qtrain: note: %s carries no chat template; using ChatML\n", o_.model.c_str());
    return std::make_shared<ChatMLRenderer>();
  }

  std::vector<int32_t> chat_ids(const std::string& user_text) {
    turns_.clear();
    if (!o_.system.empty()) turns_.push_back({"system", o_.system});
    turns_.push_back({"user", user_text});
    return built_.tokenizer->encode(chat_->render(turns_, true), true);
  }

  // A prompt fits the model: at most its positions, and ids a tokenizer made
  // (the model's or --tokenizer's) inside its vocabulary. `where` names the flag or line.
  void check_fits(const std::vector<int32_t>& ids, const std::string& where) const {
    const int max_pos = built_.loaded.config.max_pos, vocab = built_.loaded.config.vocab_size;
    if (max_pos > 0 && int(ids.size()) > max_pos)
      throw Error(where + ": the prompt is " + std::to_string(ids.size()) + " tokens, more than the model's " +
                  std::to_string(max_pos) + " positions");
    const std::string tokenizer = o_.tokenizer.empty() ? "the model's tokenizer" : "--tokenizer " + o_.tokenizer;
    for (int32_t id : ids)
      if (id >= vocab)
        throw Error(where + ": the tokenizer gave token id " + std::to_string(id) +
                    ", outside the model's vocabulary [0, " + std::to_string(vocab) + "): " + tokenizer +
                    " does not belong to --model " + o_.model);
  }

  void check_prompt(const std::vector<int32_t>& ids) const {
    if (ids.empty()) throw Error(prompt_flag() + ": the prompt is empty");
    check_fits(ids, prompt_flag());
  }

  // One generation: text (or ids) to stdout, the timings to stderr. Returns the new text (without a stop token).
  std::string run_one(const std::vector<int32_t>& prompt) {
    check_prompt(prompt);
    std::unique_ptr<TokenTextStream> text;
    if (!o_.ids) text = std::make_unique<TokenTextStream>(*built_.tokenizer);
    GenerateResult r = gen_->generate(prompt, [&](int32_t id) {
      if (!text) return;
      std::string piece = text->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    if (text) {
      std::string rest = text->finish();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      nlohmann::json j = {{"prompt_ids", prompt}, {"ids", r.ids}, {"stop", stop_reason_name(r.stop)}};
      std::printf("%s\n", j.dump().c_str());
    }
    std::fflush(stdout);
    report(r);
    if (!built_.tokenizer) return {};
    std::vector<int32_t> said = r.ids;
    if (r.stop == StopReason::StopToken) said.pop_back();
    return built_.tokenizer->decode(said);
  }

  // --prompts: the file's prompts in batches of --batch-size consecutive
  // prompts (trainer/generate_batch.h), one JSON line per prompt on stdout in
  // file order, printed when its batch is done; timings on stderr.
  int run_prompt_file() {
    const std::vector<PromptLine> lines = read_prompt_file(o_.prompts, built_.loaded.config.vocab_size);
    std::vector<std::vector<int32_t>> prompts;
    for (const PromptLine& l : lines) {
      if (!l.has_ids && !built_.tokenizer)
        throw Error(l.where + ": a text prompt needs a tokenizer: give --tokenizer PATH (or write 'prompt_ids')");
      prompts.push_back(l.has_ids ? l.ids : o_.chat ? chat_ids(l.text) : built_.tokenizer->encode(l.text, true));
      check_fits(prompts.back(), l.where);
    }
    const size_t n = prompts.size(), bs = size_t(o_.batch_size);
    const size_t batches = (n + bs - 1) / bs;
    double total_ms = 0;
    int64_t new_tokens = 0;
    for (size_t start = 0; start < n; start += bs) {
      const size_t end = std::min(n, start + bs);
      std::vector<std::vector<int32_t>> batch(prompts.begin() + ptrdiff_t(start), prompts.begin() + ptrdiff_t(end));
      auto t0 = std::chrono::steady_clock::now();
      BatchResult r = generate_batch(*built_.model, go_, batch);
      total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      new_tokens += r.new_tokens();
      for (size_t i = start; i < end; ++i) print_row(i, lines[i], prompts[i], r.rows[i - start]);
      report_batch(start / bs + 1, batches, batch, r);
    }
    std::fprintf(stderr, "[generate] %zu prompts in %zu batches of up to %zu | %lld new tokens in %.2f s: %.1f tokens/s\n",
                 n, batches, bs, static_cast<long long>(new_tokens), total_ms / 1000,
                 total_ms > 0 ? 1000.0 * double(new_tokens) / total_ms : 0.0);
    return 0;
  }

  // One prompt's result as a JSON line: --ids {"index", "prompt_ids", "ids", "stop"};
  // text {"index", "prompt" (or "prompt_ids"), "completion" (without a stop token), "stop", "new_tokens"}.
  void print_row(size_t index, const PromptLine& l, const std::vector<int32_t>& prompt, const GenerateResult& r) const {
    nlohmann::ordered_json j = {{"index", index}};  // keys in this order
    if (o_.ids) {
      j["prompt_ids"] = prompt;
      j["ids"] = r.ids;
    } else {
      if (l.has_ids)
        j["prompt_ids"] = l.ids;
      else
        j["prompt"] = l.text;
      std::vector<int32_t> said = r.ids;
      if (r.stop == StopReason::StopToken) said.pop_back();
      j["completion"] = built_.tokenizer->decode(said);
      j["new_tokens"] = r.ids.size();
    }
    j["stop"] = stop_reason_name(r.stop);
    // Replaced, not thrown on: a completion may end inside a multi-byte character.
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  void report_batch(size_t k, size_t batches, const std::vector<std::vector<int32_t>>& batch,
                    const BatchResult& r) const {
    size_t lo = SIZE_MAX, hi = 0;
    for (const auto& p : batch) lo = std::min(lo, p.size()), hi = std::max(hi, p.size());
    std::fprintf(stderr,
                 "[generate] batch %zu/%zu: %zu prompts of %zu-%zu tokens | prefill %zu tokens/row %.2f ms | %d new "
                 "tokens, %d steps, decode %.3f ms/step%s\n",
                 k, batches, batch.size(), lo, hi, lo, r.prefill_ms, r.new_tokens(), r.decode_steps,
                 r.decode_steps ? r.decode_ms / r.decode_steps : 0.0,
                 r.decode_steps && built_.model->options().device == Device::CUDA
                     ? (" | steps: " + built_.model->decode_graph_status()).c_str()
                     : "");
  }

  void report(const GenerateResult& r) const {
    std::fprintf(stderr,
                 "[generate] prompt %d tokens (%d run) | prefill %.2f ms (%.3f ms/token) | %zu new tokens, decode "
                 "%.3f ms/token | stop: %s%s\n",
                 r.prompt_tokens, r.prefilled, r.prefill_ms, r.prefilled ? r.prefill_ms / r.prefilled : 0.0,
                 r.ids.size(), r.decode_steps ? r.decode_ms / r.decode_steps : 0.0, stop_reason_name(r.stop),
                 r.decode_steps && built_.model->options().device == Device::CUDA
                     ? (" | steps: " + built_.model->decode_graph_status()).c_str()
                     : "");
  }

  // A chat on the terminal: each line is a user turn; the whole conversation
  // is rendered every turn, and the Generator runs only what its cache lacks.
  int interactive_chat() {
    std::fprintf(stderr, "qtrain chat (%s): one message per line; an empty line or Ctrl-D ends it.\n",
                 o_.model.c_str());
    turns_.clear();
    if (!o_.system.empty()) turns_.push_back({"system", o_.system});
    std::string line;
    for (;;) {
      std::fprintf(stderr, "> ");
      std::fflush(stderr);
      if (!std::getline(std::cin, line) || line.empty()) break;
      turns_.push_back({"user", line});
      auto ids = built_.tokenizer->encode(chat_->render(turns_, true), true);
      if (built_.loaded.config.max_pos > 0 && int(ids.size()) >= built_.loaded.config.max_pos) {
        std::fprintf(stderr, "qtrain: the conversation fills the model's %d positions; ending the chat\n",
                     built_.loaded.config.max_pos);
        break;
      }
      turns_.push_back({"assistant", run_one(ids)});
    }
    return 0;
  }

  GenerateCliOptions o_;
  GenerateOptions go_;
  BuiltModel built_;
  std::unique_ptr<Generator> gen_;
  std::shared_ptr<const ChatRenderer> chat_;
  std::vector<ChatTurn> turns_;
};

}  // namespace

void register_generate(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "generate",
      "Continue a prompt (or chat) with a model and an optional adapter, streaming the text to stdout; prompt "
      "and new token counts and ms/token (prefill and decode) go to stderr. Stops on the model's EOS, the chat "
      "template's end-of-turn token, or --max-new-tokens. --prompts FILE continues many prompts, --batch-size at a "
      "time.");
  add_config_option(*sub);
  auto o = std::make_shared<GenerateCliOptions>();
  sub->add_option("--model", o->model, "HF model directory, .gguf file, or registered name")->required();
  sub->add_option("--adapter", o->adapter, "PEFT adapter directory (from qtrain or peft), or a llama.cpp LoRA adapter .gguf, applied unmerged");
  sub->add_option("--method", o->method, "how the base is held, as in training (run an adapter on the base it was "
                                         "trained with): " + method_list())
      ->capture_default_str();
  add_base_flags(*sub, o->base);
  sub->add_flag("--merge", o->merge,
                "fold the adapter into the base weights first (W + s*B*A; a quantized base is dequantized, merged "
                "and quantized again), as an export with --merge would run");
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer to use instead of the model's: a dir, tokenizer.json, .gguf file or registered model name");
  auto* prompt = sub->add_option("--prompt", o->prompt,
                                 "text to continue (with --chat: the user's message); without it the prompt is read "
                                 "from stdin");
  auto* prompt_ids = sub->add_option("--prompt-ids", o->prompt_ids, "the prompt as token ids, e.g. \"1,2,3\"");
  prompt->excludes(prompt_ids);
  auto* prompts = sub->add_option(
      "--prompts", o->prompts,
      "continue every prompt of a JSONL file (plain or .gz), one object per line: {\"prompt\": TEXT} or "
      "{\"prompt_ids\": [IDS]} (other fields are ignored). Prints one JSON line per prompt, in file order, when its "
      "batch is done: {\"index\", \"prompt\", \"completion\", \"new_tokens\", \"stop\"}, or with --ids "
      "{\"index\", \"prompt_ids\", \"ids\", \"stop\"}; with --chat each prompt is one user turn. Each prompt "
      "gets what it would alone (the same tokens greedy; sampled with --seed, the tokens a lone run with that seed "
      "draws)")->option_text("FILE");
  prompts->excludes(prompt)->excludes(prompt_ids);
  auto* batch_size = sub->add_option(
      "--batch-size", o->batch_size,
      "with --prompts: decode this many consecutive prompts together in one KV cache (one decode call per step "
      "for all of them; each stops on its own). Prompts share positions: one longer than its batch's shortest "
      "runs one step per extra token, so order prompts of similar length together")
      ->capture_default_str();
  sub->add_flag("--chat", o->chat,
                "wrap the prompt as one user turn in the model's chat template (ChatML if it has none); with no "
                "--prompt and a terminal on stdin, an interactive chat");
  sub->add_option("--system", o->system, "with --chat: a system message first");
  sub->add_option("--max-new-tokens", o->max_new_tokens, "most tokens to generate")->capture_default_str();
  sub->add_option("--temperature", o->sampling.temperature, "softmax temperature; 0 = greedy (argmax)")
      ->capture_default_str();
  sub->add_option("--top-k", o->sampling.top_k, "sample among the k most likely tokens only (0 = all)")
      ->capture_default_str();
  sub->add_option("--top-p", o->sampling.top_p,
                  "sample among the most likely tokens whose probability adds up to p, in (0, 1] (1 = all)")
      ->capture_default_str();
  sub->add_option("--seed", o->sampling.seed, "sampling seed (>= 0): the same seed gives the same tokens")
      ->check(seed_check())
      ->capture_default_str();
  sub->add_flag("--no-cuda-graph", o->no_cuda_graph,
                "GPU: issue each decode step's kernels one by one instead of replaying the step captured as a CUDA "
                "graph (same tokens, slower; for debugging)");
  sub->add_option("--warmup", o->warmup,
                  "untimed runs of the prompt before the timed one, forgotten after (same output): the timings "
                  "then leave out a process's one-time work (library plans, kernel loading, the decode graph's "
                  "capture), as a server's steady state would")
      ->capture_default_str();
  sub->add_flag("--ignore-eos", o->ignore_eos, "do not stop on EOS/end-of-turn tokens: make --max-new-tokens");
  sub->add_flag("--ids", o->ids,
                "print token ids as one JSON line {\"prompt_ids\", \"ids\" (new, a stop token included), \"stop\"} "
                "instead of text");
  sub->add_option("--device", o->device, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--attention", o->attention, "GPU attention: auto | cudnn | own (see train --help)")
      ->capture_default_str();
  sub->callback([&run, o, prompt, prompt_ids, prompts, batch_size] {
    o->has_prompt = prompt->count() > 0;
    o->has_prompt_ids = prompt_ids->count() > 0;
    o->has_prompts = prompts->count() > 0;
    if (batch_size->count() > 0 && !o->has_prompts) throw CLI::ValidationError("--batch-size", "needs --prompts");
    if (o->chat && prompt_ids->count() > 0) throw CLI::ValidationError("--prompt-ids", "cannot be used with --chat");
    if (!o->chat && !o->system.empty()) throw CLI::ValidationError("--system", "needs --chat");
    run = [o] { return GenerateCommand(*o).run(); };
  });
}

}  // namespace qtrain::launch
