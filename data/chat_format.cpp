#include "data/chat_format.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/chat_template.h"
#include "kernels/error.h"

namespace qtrain {

std::string ChatMLRenderer::render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const {
  std::string out;
  for (const auto& t : turns) out += "<|im_start|>" + t.role + "\n" + t.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

JinjaChatRenderer::JinjaChatRenderer(std::string jinja, std::string bos_token, std::string eos_token)
    : tmpl_(std::make_unique<ChatTemplate>(std::move(jinja))), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {}

JinjaChatRenderer::~JinjaChatRenderer() = default;

std::string JinjaChatRenderer::render(const std::vector<ChatTurn>& turns, bool add_generation_prompt) const {
  std::vector<ChatMessage> msgs;
  msgs.reserve(turns.size());
  for (const auto& t : turns) msgs.push_back({t.role, t.content});
  return tmpl_->render(msgs, add_generation_prompt, bos_, eos_);
}

std::shared_ptr<const ChatRenderer> chat_renderer_for(const std::string& model_path) {
  namespace fs = std::filesystem;
  fs::path p(model_path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "tokenizer_config.json";
  if (!fs::exists(p, ec)) return std::make_shared<ChatMLRenderer>();
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(p.string() + ": invalid JSON");
  auto token_text = [&](const char* key) -> std::string {
    if (!j.contains(key)) return "";
    if (j[key].is_string()) return j[key].get<std::string>();
    if (j[key].is_object() && j[key].contains("content")) return j[key]["content"].get<std::string>();
    return "";
  };
  std::string tmpl;
  if (j.contains("chat_template")) {
    const auto& t = j["chat_template"];
    if (t.is_string()) tmpl = t.get<std::string>();
    else if (t.is_array())
      for (const auto& e : t)
        if (e.is_object() && e.value("name", "") == "default") tmpl = e.value("template", "");
  }
  if (tmpl.empty()) return std::make_shared<ChatMLRenderer>();
  return std::make_shared<JinjaChatRenderer>(tmpl, token_text("bos_token"), token_text("eos_token"));
}

std::vector<TextSegment> chat_segments(const ChatRenderer& r, const std::vector<ChatTurn>& turns) {
  std::vector<TextSegment> segs;
  std::string done;  // text already emitted
  for (size_t i = 0; i < turns.size(); ++i) {
    if (turns[i].role != "assistant") continue;
    std::vector<ChatTurn> before(turns.begin(), turns.begin() + i);
    std::string prompt = r.render(before, true);
    std::vector<ChatTurn> upto(turns.begin(), turns.begin() + i + 1);
    std::string full = r.render(upto, false);
    if (prompt.compare(0, done.size(), done) != 0 || full.compare(0, prompt.size(), prompt) != 0)
      throw Error("chat template: rendering is not prefix-stable, cannot mask the prompt (turn " +
                  std::to_string(i) + ")");
    segs.push_back({prompt.substr(done.size()), false, true});
    segs.push_back({full.substr(prompt.size()), true, true});
    done = std::move(full);
  }
  std::string all = r.render(turns, false);
  if (all.size() > done.size()) segs.push_back({all.substr(done.size()), false, true});
  return segs;
}

std::optional<int32_t> end_of_turn_token(const ChatRenderer& r, const Tokenizer& tok) {
  const std::string mark = "qtrainEndOfTurnProbe";
  std::string text;
  try {
    text = r.render({{"user", "hi"}, {"assistant", mark}}, false);
  } catch (const Error&) {
    return std::nullopt;  // e.g. a template that insists on a system turn: no stop token from it
  }
  size_t at = text.rfind(mark);
  if (at == std::string::npos) return std::nullopt;
  std::string_view after(text);
  after.remove_prefix(at + mark.size());
  while (!after.empty() && (after.front() == ' ' || after.front() == '\n')) after.remove_prefix(1);
  if (after.empty()) return std::nullopt;
  auto with = tok.encode(after, true), without = tok.encode(after, false);
  if (with.empty() || (!without.empty() && without[0] == with[0])) return std::nullopt;  // plain text, not a marker
  return with[0];
}

}  // namespace qtrain
