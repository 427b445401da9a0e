// Tokenizer::load: the on-disk forms of a byte-level BPE tokenizer.
//   <dir>/encoder.json + vocab.bpe   GPT-2's originals
//   <dir>/vocab.json + merges.txt    an HF GPT-2 directory (same contents, other names)
//   tokenizer.json (or <dir>/ holding one)   HF tokenizers: BPE model, ByteLevel pre-tokenizer
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "data/tokenizer.h"
#include "kernels/error.h"

namespace qtrain {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("tokenizer: cannot open " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const std::string& name) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error("tokenizer: " + name + " is not valid JSON: " + e.what());
  }
}

using VocabMap = std::unordered_map<std::string, int64_t>;

// Reads a flat {"token": id, ...} file straight into a hash map (SAX): GPT-2's
// 50k-entry encoder.json loads in a third of the time a DOM parse takes.
class FlatVocabReader : public nlohmann::json_sax<json> {
 public:
  explicit FlatVocabReader(std::string origin) : origin_(std::move(origin)) {}
  VocabMap map;
  std::string error;

  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool number_integer(number_integer_t v) override { return value(v); }
  bool number_unsigned(number_unsigned_t v) override { return value(int64_t(v)); }
  bool start_object(std::size_t) override { return ++depth_ == 1 || fail("nested objects"); }
  bool end_object() override { return --depth_, true; }
  bool null() override { return fail("a null"); }
  bool boolean(bool) override { return fail("a boolean"); }
  bool number_float(number_float_t, const string_t&) override { return fail("a non-integer id"); }
  bool string(string_t&) override { return fail("a string id"); }
  bool binary(binary_t&) override { return fail("binary"); }
  bool start_array(std::size_t) override { return fail("an array"); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
    error = origin_ + " is not valid JSON: " + e.what();
    return false;
  }

 private:
  bool value(int64_t v) {
    if (depth_ != 1) return fail("a bare number");
    map[key_] = v;
    return true;
  }
  bool fail(const char* what) {
    error = origin_ + ": expected an object of token -> integer id, found " + what +
            (key_.empty() ? "" : " at token '" + key_ + "'");
    return false;
  }
  std::string origin_, key_;
  int depth_ = 0;
};

VocabMap parse_flat_vocab(const std::string& text, const std::string& name) {
  FlatVocabReader reader(name);
  if (!json::sax_parse(text, &reader) || !reader.error.empty())
    throw Error("tokenizer: " + (reader.error.empty() ? name + " is not valid JSON" : reader.error));
  return std::move(reader.map);
}

VocabMap vocab_map(const json& vocab, const std::string& origin) {
  if (!vocab.is_object()) throw Error(origin + ": the vocabulary must be an object of token -> id");
  VocabMap m;
  m.reserve(vocab.size());
  for (auto& [tok, idj] : vocab.items()) {
    if (!idj.is_number_integer()) throw Error(origin + ": token '" + tok + "' has a non-integer id");
    m.emplace(tok, idj.get<int64_t>());
  }
  return m;
}

// Turns the token -> id map into id-ordered byte strings (ids must be 0..n-1).
std::vector<Tokenizer::Entry> vocab_entries(const VocabMap& vocab, const std::string& origin) {
  std::vector<Tokenizer::Entry> entries(vocab.size());
  std::vector<bool> seen(vocab.size());
  for (auto& [tok, id] : vocab) {
    if (id < 0 || id >= int64_t(entries.size()) || seen[id])
      throw Error(origin + ": token '" + tok + "' has id " + std::to_string(id) + ", ids must be 0.." +
                  std::to_string(int64_t(entries.size()) - 1) + " each used once");
    seen[id] = true;
    if (!byte_level::decode(tok, entries[id].bytes)) {
      entries[id].bytes = tok;  // not byte-level text: a special token written as itself
      entries[id].special = true;
    }
  }
  return entries;
}

// Merge lines "a b" (or [a, b] pairs) -> id pairs. where(r) names merge r in errors.
template <class Where>
std::vector<std::pair<int32_t, int32_t>> merge_pairs(const std::vector<std::pair<std::string, std::string>>& merges,
                                                     const VocabMap& vocab, Where where) {
  std::vector<std::pair<int32_t, int32_t>> out;
  out.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    auto a = vocab.find(merges[r].first), b = vocab.find(merges[r].second);
    if (a == vocab.end() || b == vocab.end())
      throw Error(where(r) + ": merge '" + merges[r].first + " " + merges[r].second +
                  "' names a token not in the vocabulary");
    out.emplace_back(int32_t(a->second), int32_t(b->second));
  }
  return out;
}

std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& origin, size_t lineno) {
  size_t sp = line.find(' ', 1);
  if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
    throw Error(origin + ":" + std::to_string(lineno) + ": a merge must be two tokens separated by one space");
  return {line.substr(0, sp), line.substr(sp + 1)};
}

int32_t find_id(const std::vector<Tokenizer::Entry>& v, const std::string& text) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i].bytes == text) return int32_t(i);
  return -1;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gpt2_files(const std::string& vocab_json, const std::string& merges_text,
                                                      const std::string& origin, const std::string& merges_name) {
  VocabMap vocab = parse_flat_vocab(vocab_json, origin);
  auto entries = vocab_entries(vocab, origin);
  int32_t eos = find_id(entries, "<|endoftext|>");
  if (eos >= 0) entries[eos].special = true;
  std::istringstream in(merges_text);
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<size_t> linenos;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(split_merge(line, merges_name, lineno));
    linenos.push_back(lineno);
  }
  auto pairs = merge_pairs(merges, vocab,
                           [&](size_t r) { return merges_name + ":" + std::to_string(linenos[r]); });
  return std::make_unique<Tokenizer>(std::move(entries), pairs, PreTokenizer::Gpt2, -1, eos, origin);
}

namespace {

// j[key] when j is an object holding a string there, else "" (type checks
// on untrusted JSON: j.value() throws on a mistyped field).
std::string str_field(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// j[key] when j is an object holding a boolean there, else dflt.
bool bool_field(const json& j, const char* key, bool dflt) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : dflt;
}

PreTokenizer pre_tokenizer_of(const json& pre, const std::string& origin) {
  auto is_byte_level = [&](const json& p) {
    if (str_field(p, "type") != "ByteLevel") return false;
    if (bool_field(p, "add_prefix_space", false))
      throw Error(origin + ": ByteLevel pre-tokenizer with add_prefix_space=true is not supported");
    if (!bool_field(p, "use_regex", true))
      throw Error(origin + ": ByteLevel pre-tokenizer with use_regex=false is not supported");
    return true;
  };
  if (pre.is_object()) {
    if (is_byte_level(pre)) return PreTokenizer::Gpt2;
    if (str_field(pre, "type") == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
      const json& seq = pre["pretokenizers"];
      if (seq.size() == 2 && str_field(seq[0], "type") == "Digits" && bool_field(seq[0], "individual_digits", false) &&
          is_byte_level(seq[1]))
        return PreTokenizer::SmolLM;
      if (seq.size() == 1 && is_byte_level(seq[0])) return PreTokenizer::Gpt2;
    }
  }
  throw Error(origin + ": unsupported pre_tokenizer " + pre.dump().substr(0, 200) +
              " (supported: ByteLevel, or Sequence[Digits(individual_digits), ByteLevel])");
}

// "eos_token": "<|x|>" or {"content": "<|x|>"} in tokenizer_config.json.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& text, const std::string& config_text,
                                                          const std::string& origin) {
  json j = parse_json(text, origin);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw Error(origin + ": no \"model\" object (not an HF tokenizer.json)");
  const json& model = j["model"];
  if (model.contains("type") && str_field(model, "type") != "BPE")
    throw Error(origin + ": model type " + model["type"].dump().substr(0, 80) + " is not supported (only BPE)");
  if (!model.contains("vocab") || !model.contains("merges")) throw Error(origin + ": model has no vocab or merges");
  VocabMap vocab = vocab_map(model["vocab"], origin);
  auto entries = vocab_entries(vocab, origin);
  const json& added = j.contains("added_tokens") && !j["added_tokens"].is_null() ? j["added_tokens"] : json::array();
  if (!added.is_array()) throw Error(origin + ": field 'added_tokens' must be a list");
  // Added tokens extend the vocabulary at its end: an id past vocab + added is no real file's.
  const int64_t max_id = int64_t(entries.size() + added.size()) - 1;
  for (const auto& at : added) {
    const bool has_id = at.is_object() && at.contains("id") && at["id"].is_number_integer();
    int64_t id = has_id ? at["id"].get<int64_t>() : -1;
    std::string content = str_field(at, "content");
    if (id < 0 || content.empty()) throw Error(origin + ": an added_tokens entry lacks id or content");
    if (id > max_id)
      throw Error(origin + ": added token '" + content + "' has id " + std::to_string(id) + ", past the " +
                  std::to_string(max_id + 1) + " ids of the vocabulary and added tokens");
    if (id >= int64_t(entries.size())) entries.resize(id + 1);
    entries[id].bytes = content;
    entries[id].special = true;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  size_t r = 0;
  for (const auto& m : model["merges"]) {
    ++r;
    if (m.is_string()) merges.push_back(split_merge(m.get<std::string>(), origin + " merges", r));
    else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    else throw Error(origin + ": merge " + std::to_string(r) + " is neither \"a b\" nor [a, b]");
  }
  auto pairs = merge_pairs(merges, vocab,
                           [&](size_t r) { return origin + ": model.merges[" + std::to_string(r) + "]"; });
  PreTokenizer pre = pre_tokenizer_of(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), origin);
  // A normalizer would change the text before BPE; running without it would give wrong ids silently.
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    throw Error(origin + ": normalizer " + (str_field(j["normalizer"], "type").empty() ? std::string("?") : str_field(j["normalizer"], "type")) +
                " is not supported (byte-level BPE tokenizers have none)");
  json cfg;
  if (!config_text.empty()) cfg = parse_json(config_text, (fs::path(origin).parent_path() / "tokenizer_config.json").string());
  std::string eos_text = config_token(cfg, "eos_token"), bos_text = config_token(cfg, "bos_token");
  int32_t eos = find_id(entries, eos_text.empty() ? "<|endoftext|>" : eos_text);
  int32_t bos = bos_text.empty() ? -1 : find_id(entries, bos_text);
  return std::make_unique<Tokenizer>(std::move(entries), pairs, pre, bos, eos, origin);
}

namespace {

std::unique_ptr<Tokenizer> load_gpt2_files(const fs::path& vocab_path, const fs::path& merges_path) {
  return Tokenizer::from_gpt2_files(read_file(vocab_path), read_file(merges_path), vocab_path.string(),
                                    merges_path.string());
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& path) {
  fs::path cfg_path = path.parent_path() / "tokenizer_config.json";
  return Tokenizer::from_tokenizer_json(read_file(path), fs::exists(cfg_path) ? read_file(cfg_path) : std::string(),
                                        path.string());
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path_str) {
  fs::path path(path_str);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "tokenizer.json")) return load_tokenizer_json(path / "tokenizer.json");
    if (fs::exists(path / "encoder.json") && fs::exists(path / "vocab.bpe"))
      return load_gpt2_files(path / "encoder.json", path / "vocab.bpe");
    if (fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt"))
      return load_gpt2_files(path / "vocab.json", path / "merges.txt");
    throw Error("tokenizer: " + path_str +
                " holds none of tokenizer.json, encoder.json+vocab.bpe, vocab.json+merges.txt");
  }
  if (fs::is_regular_file(path, ec)) return load_tokenizer_json(path);
  throw Error("tokenizer: " + path_str + " does not exist");
}

}  // namespace qtrain
