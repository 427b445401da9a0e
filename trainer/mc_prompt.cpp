#include "trainer/mc_prompt.h"

#include <nlohmann/json.hpp>

#include "data/json_lines.h"
#include "kernels/error.h"

namespace qtrain {

namespace {

McQuestion parse_row(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const std::string& field, const std::string& what) {
    return Error(where + ": field '" + field + "' " + what);
  };
  if (!j.is_object()) throw Error(where + ": not a JSON object");
  McQuestion q;
  q.where = where;
  for (const char* f : {"question", "subject"}) {
    if (!j.contains(f)) throw bad(f, "is missing");
    if (!j[f].is_string()) throw bad(f, "must be a string");
  }
  q.question = j["question"].get<std::string>();
  q.subject = j["subject"].get<std::string>();
  if (q.subject.empty()) throw bad("subject", "is empty");
  if (!j.contains("choices")) throw bad("choices", "is missing");
  const auto& c = j["choices"];
  if (!c.is_array() || c.size() < 2 || c.size() > 26)
    throw bad("choices", "must be a list of 2 to 26 strings (MMLU has 4)");
  for (const auto& s : c) {
    if (!s.is_string()) throw bad("choices", "must hold strings only");
    q.choices.push_back(s.get<std::string>());
  }
  if (!j.contains("answer")) throw bad("answer", "is missing");
  const auto& a = j["answer"];
  const int n = int(q.choices.size());
  if (a.is_number_integer()) {
    q.answer = a.get<int>();
  } else if (a.is_string() && a.get<std::string>().size() == 1) {
    char l = a.get<std::string>()[0];
    q.answer = (l >= 'a' && l <= 'z') ? l - 'a' : l - 'A';
  } else {
    throw bad("answer", "must be a 0-based choice index or a letter A-" + mc_letter(n - 1));
  }
  if (q.answer < 0 || q.answer >= n)
    throw bad("answer", "is " + a.dump() + ", outside the " + std::to_string(n) + " choices");
  return q;
}

// Calls f(question, split) for each row of a JSONL file.
template <class F>
void for_each_row(const std::string& path, F f) {
  for_each_json_line(path, [&](const nlohmann::json& j, const std::string& where) {
    std::string split;
    if (j.is_object() && j.contains("split")) {
      if (!j["split"].is_string()) throw Error(where + ": field 'split' must be a string");
      split = j["split"].get<std::string>();
    }
    f(parse_row(j, where), split);
  });
}

}  // namespace

std::string mc_letter(int i) { return std::string(1, char('A' + i)); }

McSet read_mc_questions(const std::string& path, const std::string& dev_path, const std::string& split) {
  McSet set;
  for_each_row(path, [&](McQuestion q, const std::string& s) {
    if (s == "dev") {
      if (dev_path.empty()) set.dev[q.subject].push_back(std::move(q));
    } else if (s.empty() || s == split) {
      set.questions.push_back(std::move(q));
    }
  });
  if (!dev_path.empty())
    for_each_row(dev_path, [&](McQuestion q, const std::string&) { set.dev[q.subject].push_back(std::move(q)); });
  if (set.questions.empty())
    throw Error(path + ": no question to score (rows with split \"dev\" are shots; others need no split or split \"" +
                split + "\")");
  return set;
}

static void append_question(std::string& out, const McQuestion& q) {
  out += q.question;
  for (size_t i = 0; i < q.choices.size(); ++i) out += "\n" + mc_letter(int(i)) + ". " + q.choices[i];
  out += "\nAnswer:";
}

std::string mc_prompt_text(const McQuestion& q, const std::vector<const McQuestion*>& shots) {
  std::string subject = q.subject;
  for (char& c : subject)
    if (c == '_') c = ' ';
  std::string out = "The following are multiple choice questions (with answers) about " + subject + ".\n\n";
  for (const McQuestion* s : shots) {
    append_question(out, *s);
    out += " " + mc_letter(s->answer) + "\n\n";
  }
  append_question(out, q);
  return out;
}

McPrompt build_mc_prompt(const Tokenizer& tok, const McSet& set, const McQuestion& q, int shots, int max_tokens) {
  std::vector<const McQuestion*> pool;
  if (auto it = set.dev.find(q.subject); it != set.dev.end())
    for (size_t i = 0; i < it->second.size() && int(pool.size()) < shots; ++i) pool.push_back(&it->second[i]);
  McPrompt p;
  for (;;) {
    p.ids = tok.encode(mc_prompt_text(q, pool));
    p.shots = int(pool.size());
    if (int(p.ids.size()) <= max_tokens) return p;
    if (pool.empty()) break;
    pool.pop_back();
  }
  // Too long even alone: keep the end, where the choices and "Answer:" are.
  p.ids.erase(p.ids.begin(), p.ids.end() - max_tokens);
  p.cut = true;
  return p;
}

}  // namespace qtrain
