// The values a chat template computes with: Python-like undefined, None,
// bool, int, float, str, list and dict (lists and dicts are shared references,
// as in Python), and the Python semantics of printing, comparing and
// serializing them (str(), repr(), ==, <, in, json.dumps).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qtrain::jinja {

[[noreturn]] void fail(const std::string& msg);  // a qtrain::Error "chat template: msg"

struct Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts

struct Value {
  enum Kind { Undefined, None, Bool, Int, Float, Str, List, Dict } kind = Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<ValueList> list;  // shared: Python lists/dicts are references
  std::shared_ptr<ValueDict> dict;

  static Value none() { Value v; v.kind = None; return v; }
  static Value boolean(bool x) { Value v; v.kind = Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Int; v.i = x; return v; }
  static Value real(double x) { Value v; v.kind = Float; v.f = x; return v; }
  static Value str(std::string x) { Value v; v.kind = Str; v.s = std::move(x); return v; }
  static Value new_list(ValueList xs = {}) {
    Value v; v.kind = List; v.list = std::make_shared<ValueList>(std::move(xs)); return v;
  }
  static Value new_dict() { Value v; v.kind = Dict; v.dict = std::make_shared<ValueDict>(); return v; }

  bool numeric() const { return kind == Bool || kind == Int || kind == Float; }
  double num() const { return kind == Float ? f : kind == Int ? double(i) : double(b); }
  const Value* get(const std::string& key) const {
    if (kind != Dict) return nullptr;
    for (auto& [k, v] : *dict)
      if (k == key) return &v;
    return nullptr;
  }
  void put(const std::string& key, Value v) {
    for (auto& [k, old] : *dict)
      if (k == key) { old = std::move(v); return; }
    dict->emplace_back(key, std::move(v));
  }
};

const char* kind_name(const Value& v);
bool truthy(const Value& v);
std::string to_str(const Value& v);                           // str(v): what {{ v }} prints
std::string repr(const Value& v);                             // repr(v)
std::string to_json(const Value& v, int indent, int depth);   // json.dumps(v, ensure_ascii=False[, indent])
bool equal(const Value& a, const Value& b);
bool less(const Value& a, const Value& b);
bool contains(const Value& hay, const Value& needle);         // needle in hay
std::string strip(const std::string& s, const std::string& chars, bool left, bool right);
inline const std::string kSpace = " \t\n\r\f\v";

}  // namespace qtrain::jinja
