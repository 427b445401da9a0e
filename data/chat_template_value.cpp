#include "data/chat_template_value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kernels/error.h"

namespace qtrain::jinja {

void fail(const std::string& msg) { throw Error("chat template: " + msg); }

namespace {
std::string float_str(double f) {  // Python's repr for the common cases
  if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 1e16) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", f);
    return buf;
  }
  for (int prec = 1; prec <= 17; ++prec) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*g", prec, f);
    if (std::strtod(buf, nullptr) == f) return buf;
  }
  return std::to_string(f);
}

}  // namespace

const char* kind_name(const Value& v) {
  static const char* n[] = {"undefined", "none", "bool", "int", "float", "string", "list", "dict"};
  return n[v.kind];
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Undefined: case Value::None: return false;
    case Value::Bool: return v.b;
    case Value::Int: return v.i != 0;
    case Value::Float: return v.f != 0;
    case Value::Str: return !v.s.empty();
    case Value::List: return !v.list->empty();
    case Value::Dict: return !v.dict->empty();
  }
  return false;
}

// str(v): what {{ v }} prints
std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Undefined: return "";
    case Value::None: return "None";
    case Value::Bool: return v.b ? "True" : "False";
    case Value::Int: return std::to_string(v.i);
    case Value::Float: return float_str(v.f);
    case Value::Str: return v.s;
    default: return repr(v);
  }
}

namespace {
thread_local int repr_depth = 0;  // values nest only as deep as a template builds them; bound the walk
struct NestGuard {
  int& d;
  explicit NestGuard(int& x) : d(x) {
    if (++d > 100) fail("values nested more than 100 deep");
  }
  ~NestGuard() { --d; }
};
}  // namespace

std::string repr(const Value& v) {
  NestGuard guard(repr_depth);
  if (v.kind == Value::Str) {
    std::string q = v.s.find('\'') != std::string::npos && v.s.find('"') == std::string::npos ? "\"" : "'";
    std::string out = q;
    for (char c : v.s) {
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (std::string(1, c) == q) out += "\\" + q;
      else out += c;
    }
    return out + q;
  }
  if (v.kind == Value::List) {
    std::string out = "[";
    for (size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + repr((*v.list)[k]);
    return out + "]";
  }
  if (v.kind == Value::Dict) {
    std::string out = "{";
    bool first = true;
    for (auto& [k, x] : *v.dict) {
      out += (first ? "'" : ", '") + k + "': " + repr(x);
      first = false;
    }
    return out + "}";
  }
  return to_str(v);
}

// json.dumps(v, ensure_ascii=False), as transformers' tojson filter
std::string to_json(const Value& v, int indent, int depth) {
  if (depth > 100) fail("values nested more than 100 deep");
  auto nl = [&](int d) { return indent < 0 ? std::string() : "\n" + std::string(size_t(indent * d), ' '); };
  switch (v.kind) {
    case Value::Undefined: case Value::None: return "null";
    case Value::Bool: return v.b ? "true" : "false";
    case Value::Int: return std::to_string(v.i);
    case Value::Float: return float_str(v.f);
    case Value::Str: {
      std::string out = "\"";
      for (unsigned char c : v.s) {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\t': out += "\\t"; break;
          case '\b': out += "\\b"; break;
          case '\f': out += "\\f"; break;
          default:
            if (c < 0x20) {
              char buf[8];
              std::snprintf(buf, sizeof buf, "\\u%04x", c);
              out += buf;
            } else {
              out += char(c);
            }
        }
      }
      return out + "\"";
    }
    case Value::List: {
      if (v.list->empty()) return "[]";
      std::string out = "[";
      for (size_t k = 0; k < v.list->size(); ++k)
        out += (k ? (indent < 0 ? ", " : ",") : "") + nl(depth + 1) + to_json((*v.list)[k], indent, depth + 1);
      return out + nl(depth) + "]";
    }
    case Value::Dict: {
      if (v.dict->empty()) return "{}";
      std::string out = "{";
      bool first = true;
      for (auto& [k, x] : *v.dict) {
        out += (first ? "" : (indent < 0 ? ", " : ",")) + nl(depth + 1) + to_json(Value::str(k), -1, 0) + ": " +
               to_json(x, indent, depth + 1);
        first = false;
      }
      return out + nl(depth) + "}";
    }
  }
  return "null";
}

bool equal(const Value& a, const Value& b) {
  NestGuard guard(repr_depth);
  if (a.numeric() && b.numeric()) return a.num() == b.num();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Str: return a.s == b.s;
    case Value::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (auto& [k, x] : *a.dict) {
        const Value* y = b.get(k);
        if (!y || !equal(x, *y)) return false;
      }
      return true;
    default: return true;  // None == None, undefined == undefined
  }
}

bool less(const Value& a, const Value& b) {
  if (a.numeric() && b.numeric()) return a.num() < b.num();
  if (a.kind == Value::Str && b.kind == Value::Str) return a.s < b.s;
  fail(std::string("cannot order ") + kind_name(a) + " and " + kind_name(b));
}

bool contains(const Value& hay, const Value& needle) {
  if (hay.kind == Value::Str) {
    if (needle.kind != Value::Str) fail("'in <string>' needs a string on the left");
    return hay.s.find(needle.s) != std::string::npos;
  }
  if (hay.kind == Value::List) {
    for (auto& x : *hay.list)
      if (equal(x, needle)) return true;
    return false;
  }
  if (hay.kind == Value::Dict) return needle.kind == Value::Str && hay.get(needle.s) != nullptr;
  fail(std::string("'in' needs a string, list or dict, got ") + kind_name(hay));
}

std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) while (b < e && chars.find(s[b]) != std::string::npos) ++b;
  if (right) while (e > b && chars.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}

}  // namespace qtrain::jinja
