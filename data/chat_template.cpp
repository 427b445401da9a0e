// Renders a parsed chat template (data/chat_template_parse.h) by walking its
// tree over the Python-like values of data/chat_template_value.h, with
// Jinja's scoping: a for loop has its own scope, so only namespace() objects
// carry state out of it.
#include "data/chat_template.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>

#include "data/chat_template_parse.h"
#include "kernels/error.h"

namespace qtrain {

using namespace jinja;

namespace {

// ---- rendering --------------------------------------------------------------------
class Renderer {
 public:
  explicit Renderer(std::map<std::string, Value> globals) { scopes_.push_back(std::move(globals)); }

  void run(const Body& b, std::string& out) {
    for (const Stmt& s : b) exec(s, out);
  }

 private:
  void exec(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Text: out += s.text; return;
      case Stmt::Output: out += to_str(eval(*s.expr)); return;
      case Stmt::If:
        for (auto& [c, b] : s.arms)
          if (truthy(eval(*c))) return run(b, out);
        return run(s.else_body, out);
      case Stmt::Set: {
        Value v = eval(*s.expr);
        if (s.attr.empty()) {
          scopes_.back()[s.target] = std::move(v);
        } else {
          Value ns = lookup(s.target);
          if (ns.kind != Value::Dict) fail("line " + std::to_string(s.line) + ": '" + s.target + "' is not a namespace");
          ns.put(s.attr, std::move(v));
        }
        return;
      }
      case Stmt::For: return exec_for(s, out);
    }
  }

  void exec_for(const Stmt& s, std::string& out) {
    std::vector<Value> items = iterate(eval(*s.expr));
    scopes_.emplace_back();  // the loop's own scope: its sets do not leak out
    if (s.filter) {
      std::vector<Value> kept;
      for (auto& it : items) {
        bind(s, it);
        if (truthy(eval(*s.filter))) kept.push_back(it);
      }
      items.swap(kept);
    }
    const int64_t n = int64_t(items.size());
    for (int64_t k = 0; k < n; ++k) {
      if (++iterations_ > kMaxIterations) fail("more than 10 million loop iterations");
      bind(s, items[size_t(k)]);
      Value loop = Value::new_dict();
      loop.put("index0", Value::integer(k));
      loop.put("index", Value::integer(k + 1));
      loop.put("revindex0", Value::integer(n - k - 1));
      loop.put("revindex", Value::integer(n - k));
      loop.put("first", Value::boolean(k == 0));
      loop.put("last", Value::boolean(k == n - 1));
      loop.put("length", Value::integer(n));
      loop.put("previtem", k > 0 ? items[size_t(k - 1)] : Value());
      loop.put("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value());
      scopes_.back()["loop"] = loop;
      run(s.body, out);
    }
    scopes_.pop_back();
    if (n == 0) run(s.else_body, out);
  }

  void bind(const Stmt& s, const Value& item) {
    if (s.vars.size() == 1) {
      scopes_.back()[s.vars[0]] = item;
      return;
    }
    if (item.kind != Value::List || item.list->size() != s.vars.size())
      fail("line " + std::to_string(s.line) + ": cannot unpack " + kind_name(item) + " into " +
           std::to_string(s.vars.size()) + " loop variables");
    for (size_t k = 0; k < s.vars.size(); ++k) scopes_.back()[s.vars[k]] = (*item.list)[k];
  }

  static std::vector<Value> iterate(const Value& v) {
    switch (v.kind) {
      case Value::List: return *v.list;
      case Value::Dict: {
        std::vector<Value> keys;
        for (auto& [k, x] : *v.dict) keys.push_back(Value::str(k));
        return keys;
      }
      case Value::Str: {
        std::vector<Value> cs;
        for (char c : v.s) cs.push_back(Value::str(std::string(1, c)));
        return cs;
      }
      case Value::Undefined: case Value::None: return {};
      default: fail(std::string("cannot iterate over ") + kind_name(v));
    }
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  static int64_t to_index(const Value& v, int64_t n, bool clamp) {
    if (v.kind != Value::Int && v.kind != Value::Bool) fail(std::string("index must be an int, got ") + kind_name(v));
    int64_t i = v.kind == Value::Int ? v.i : int64_t(v.b);
    if (i < 0) i += n;
    if (clamp) i = std::clamp<int64_t>(i, 0, n);
    return i;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Literal: return e.lit;
      case Expr::Name: return lookup(e.name);
      case Expr::ListLit: {
        Value l = Value::new_list();
        for (auto& x : e.a) l.list->push_back(eval(*x));
        return l;
      }
      case Expr::DictLit: {
        Value d = Value::new_dict();
        for (size_t k = 0; k + 1 < e.a.size(); k += 2) d.put(to_str(eval(*e.a[k])), eval(*e.a[k + 1]));
        return d;
      }
      case Expr::Attr: {
        Value o = eval(*e.a[0]);
        const Value* v = o.get(e.name);
        return v ? *v : Value();
      }
      case Expr::Index: {
        Value o = eval(*e.a[0]), i = eval(*e.a[1]);
        if (o.kind == Value::Dict) {
          const Value* v = o.get(to_str(i));
          return v ? *v : Value();
        }
        if (o.kind == Value::List || o.kind == Value::Str) {
          const int64_t n = o.kind == Value::List ? int64_t(o.list->size()) : int64_t(o.s.size());
          const int64_t k = to_index(i, n, false);
          if (k < 0 || k >= n) return Value();
          return o.kind == Value::List ? (*o.list)[size_t(k)] : Value::str(std::string(1, o.s[size_t(k)]));
        }
        return Value();
      }
      case Expr::Slice: {
        Value o = eval(*e.a[0]);
        if (o.kind != Value::List && o.kind != Value::Str) fail(std::string("cannot slice ") + kind_name(o));
        const int64_t n = o.kind == Value::List ? int64_t(o.list->size()) : int64_t(o.s.size());
        const int64_t b = e.a[1] ? to_index(eval(*e.a[1]), n, true) : 0;
        const int64_t en = std::max(b, e.a[2] ? to_index(eval(*e.a[2]), n, true) : n);
        if (o.kind == Value::Str) return Value::str(o.s.substr(size_t(b), size_t(en - b)));
        return Value::new_list(ValueList(o.list->begin() + b, o.list->begin() + en));
      }
      case Expr::Cond: return truthy(eval(*e.a[0])) ? eval(*e.a[1]) : eval(*e.a[2]);
      case Expr::Unary: {
        Value v = eval(*e.a[0]);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (!v.numeric()) fail("unary " + e.name + " on " + kind_name(v));
        if (e.name == "+") return v;
        return v.kind == Value::Float ? Value::real(-v.f) : Value::integer(-int64_t(v.num()));
      }
      case Expr::Binary: return binary(e);
      case Expr::Call: return call(e);
      case Expr::Filter: return filter(e);
      case Expr::Test: return Value::boolean(test(e) != e.negate);
    }
    return Value();
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.a[0]);
      return truthy(l) ? eval(*e.a[1]) : l;
    }
    if (op == "or") {
      Value l = eval(*e.a[0]);
      return truthy(l) ? l : eval(*e.a[1]);
    }
    Value l = eval(*e.a[0]), r = eval(*e.a[1]);
    if (op == "==") return Value::boolean(equal(l, r));
    if (op == "!=") return Value::boolean(!equal(l, r));
    if (op == "<") return Value::boolean(less(l, r));
    if (op == ">") return Value::boolean(less(r, l));
    if (op == "<=") return Value::boolean(!less(r, l));
    if (op == ">=") return Value::boolean(!less(l, r));
    if (op == "in") return Value::boolean(contains(r, l));
    if (op == "not in") return Value::boolean(!contains(r, l));
    if (op == "~") return Value::str(to_str(l) + to_str(r));
    if (op == "+" && l.kind == Value::Str && r.kind == Value::Str) return Value::str(l.s + r.s);
    if (op == "+" && l.kind == Value::List && r.kind == Value::List) {
      ValueList x = *l.list;
      x.insert(x.end(), r.list->begin(), r.list->end());
      return Value::new_list(std::move(x));
    }
    if (op == "*" && l.kind == Value::Str && r.kind == Value::Int) {
      if (r.i > 0 && l.s.size() * size_t(std::min<int64_t>(r.i, 1 << 30)) > (size_t(1) << 26))
        fail("string repetition longer than 64 MiB");
      std::string x;
      for (int64_t k = 0; k < r.i; ++k) x += l.s;
      return Value::str(x);
    }
    if (!l.numeric() || !r.numeric())
      fail("unsupported operand types for " + op + ": " + kind_name(l) + " and " + kind_name(r));
    const bool ints = l.kind != Value::Float && r.kind != Value::Float;
    const double a = l.num(), b = r.num();
    if (op == "/") {
      if (b == 0) fail("division by zero");
      return Value::real(a / b);
    }
    if (ints) {
      const int64_t x = int64_t(a), y = int64_t(b);
      if (op == "+") return Value::integer(x + y);
      if (op == "-") return Value::integer(x - y);
      if (op == "*") return Value::integer(x * y);
      if (y == 0) fail("division by zero");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) --q, m += y;  // Python floors
      return Value::integer(op == "//" ? q : m);
    }
    if (op == "+") return Value::real(a + b);
    if (op == "-") return Value::real(a - b);
    if (op == "*") return Value::real(a * b);
    if (b == 0) fail("division by zero");
    const double q = std::floor(a / b);
    return Value::real(op == "//" ? q : a - q * b);
  }

  std::vector<Value> args(const Expr& e, size_t from) {
    std::vector<Value> out;
    for (size_t k = from; k < e.a.size(); ++k) out.push_back(eval(*e.a[k]));
    return out;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.a[0];
    std::vector<Value> av = args(e, 1);
    auto arg = [&](size_t k) { return k < av.size() ? av[k] : Value(); };
    if (callee.kind == Expr::Name) {
      if (callee.name == "raise_exception") fail(to_str(arg(0)));
      if (callee.name == "namespace") {
        Value ns = Value::new_dict();
        const size_t first_kw = av.size() - e.kwargs.size();
        for (size_t k = first_kw; k < av.size(); ++k) ns.put(e.kwargs[k - first_kw], av[k]);
        return ns;
      }
      if (callee.name == "range") {
        Value l = Value::new_list();
        int64_t b = av.size() > 1 ? arg(0).i : 0, en = av.size() > 1 ? arg(1).i : arg(0).i;
        if (en - b > 100000) fail("range() of more than 100000 items");
        for (int64_t k = b; k < en; ++k) l.list->push_back(Value::integer(k));
        return l;
      }
      fail("unknown function '" + callee.name + "'");
    }
    if (callee.kind != Expr::Attr) fail("only functions and methods can be called");
    Value self = eval(*callee.a[0]);
    const std::string& m = callee.name;
    if (self.kind == Value::Str) {
      const std::string& s = self.s;
      const std::string chars = av.empty() || arg(0).kind == Value::None ? kSpace : to_str(arg(0));
      if (m == "strip") return Value::str(strip(s, chars, true, true));
      if (m == "lstrip") return Value::str(strip(s, chars, true, false));
      if (m == "rstrip") return Value::str(strip(s, chars, false, true));
      if (m == "startswith") return Value::boolean(s.rfind(to_str(arg(0)), 0) == 0);
      if (m == "endswith") {
        std::string x = to_str(arg(0));
        return Value::boolean(s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0);
      }
      if (m == "upper" || m == "lower" || m == "title" || m == "capitalize") return Value::str(recase(s, m));
      if (m == "replace") {
        std::string from = to_str(arg(0)), to = to_str(arg(1)), out;
        if (from.empty()) return self;
        size_t p = 0, q;
        while ((q = s.find(from, p)) != std::string::npos) out += s.substr(p, q - p) + to, p = q + from.size();
        return Value::str(out + s.substr(p));
      }
      if (m == "split") return split(s, av.empty() || arg(0).kind == Value::None ? "" : to_str(arg(0)));
    }
    if (self.kind == Value::Dict) {
      if (m == "get") {
        const Value* v = self.get(to_str(arg(0)));
        return v ? *v : (av.size() > 1 ? arg(1) : Value::none());
      }
      if (m == "items" || m == "keys" || m == "values") {
        Value l = Value::new_list();
        for (auto& [k, x] : *self.dict) {
          if (m == "keys") l.list->push_back(Value::str(k));
          else if (m == "values") l.list->push_back(x);
          else l.list->push_back(Value::new_list({Value::str(k), x}));
        }
        return l;
      }
    }
    fail(std::string("no method '") + m + "' on " + kind_name(self));
  }

  static std::string recase(const std::string& s, const std::string& how) {
    std::string out = s;
    bool word_start = true;
    for (size_t k = 0; k < out.size(); ++k) {
      unsigned char c = uint8_t(out[k]);
      bool up = how == "upper" || ((how == "title" || how == "capitalize") && word_start && (how == "title" || k == 0));
      out[k] = char(up ? std::toupper(c) : (how == "upper" ? c : std::tolower(c)));
      word_start = !std::isalpha(c);
    }
    return out;
  }

  static Value split(const std::string& s, const std::string& sep) {
    Value l = Value::new_list();
    if (sep.empty()) {  // Python: split on runs of whitespace
      size_t p = 0;
      while ((p = s.find_first_not_of(kSpace, p)) != std::string::npos) {
        size_t q = s.find_first_of(kSpace, p);
        l.list->push_back(Value::str(s.substr(p, q - p)));
        p = q;
      }
      return l;
    }
    size_t p = 0, q;
    while ((q = s.find(sep, p)) != std::string::npos) l.list->push_back(Value::str(s.substr(p, q - p))), p = q + sep.size();
    l.list->push_back(Value::str(s.substr(p)));
    return l;
  }

  Value filter(const Expr& e) {
    Value v = eval(*e.a[0]);
    std::vector<Value> av = args(e, 1);
    const std::string& f = e.name;
    if (f == "trim") return Value::str(strip(to_str(v), kSpace, true, true));
    if (f == "length" || f == "count") {
      if (v.kind == Value::Str) return Value::integer(int64_t(v.s.size()));
      if (v.kind == Value::List) return Value::integer(int64_t(v.list->size()));
      if (v.kind == Value::Dict) return Value::integer(int64_t(v.dict->size()));
      fail(std::string("length of ") + kind_name(v));
    }
    if (f == "upper" || f == "lower" || f == "title" || f == "capitalize") return Value::str(recase(to_str(v), f));
    if (f == "string") return Value::str(to_str(v));
    if (f == "default" || f == "d") {
      const bool use = v.kind == Value::Undefined || (av.size() > 1 && truthy(av[1]) && !truthy(v));
      return use ? (av.empty() ? Value::str("") : av[0]) : v;
    }
    if (f == "first" || f == "last") {
      std::vector<Value> items = iterate(v);
      if (items.empty()) return Value();
      return f == "first" ? items.front() : items.back();
    }
    if (f == "join") {
      std::string sep = av.empty() ? "" : to_str(av[0]), out;
      bool first = true;
      for (auto& x : iterate(v)) out += (first ? "" : sep) + to_str(x), first = false;
      return Value::str(out);
    }
    if (f == "tojson") {
      int indent = -1;
      for (size_t k = 0; k < av.size(); ++k)
        if (av[k].kind == Value::Int) indent = int(av[k].i);
      return Value::str(to_json(v, indent, 0));
    }
    if (f == "list") return Value::new_list(iterate(v));
    if (f == "int") return Value::integer(v.numeric() ? int64_t(v.num()) : std::atoll(to_str(v).c_str()));
    fail("unsupported filter '" + f + "'");
  }

  bool test(const Expr& e) {
    Value v = eval(*e.a[0]);
    const std::string& t = e.name;
    if (t == "defined") return v.kind != Value::Undefined;
    if (t == "undefined") return v.kind == Value::Undefined;
    if (t == "none") return v.kind == Value::None;
    if (t == "string") return v.kind == Value::Str;
    if (t == "number") return v.kind == Value::Int || v.kind == Value::Float;
    if (t == "integer") return v.kind == Value::Int;
    if (t == "boolean") return v.kind == Value::Bool;
    if (t == "mapping") return v.kind == Value::Dict;
    if (t == "sequence" || t == "iterable") return v.kind == Value::List || v.kind == Value::Str || v.kind == Value::Dict;
    if (t == "true") return v.kind == Value::Bool && v.b;
    if (t == "false") return v.kind == Value::Bool && !v.b;
    if (t == "even" || t == "odd") return v.kind == Value::Int && (v.i % 2 == 0) == (t == "even");
    fail("unsupported test 'is " + t + "'");
  }

  std::vector<std::map<std::string, Value>> scopes_;
  static constexpr int64_t kMaxIterations = 10'000'000;  // a template is a loop over messages, not a program
  int64_t iterations_ = 0;
};

}  // namespace

struct ChatTemplate::Program {
  Body body;
};

ChatTemplate::ChatTemplate(std::string jinja_source) : source_(std::move(jinja_source)) {
  program_ = std::make_unique<Program>();
  program_->body = parse_template(source_);
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                 const std::string& bos_token, const std::string& eos_token) const {
  Value messages = Value::new_list();
  for (auto& m : msgs) {
    Value d = Value::new_dict();
    d.put("role", Value::str(m.role));
    d.put("content", Value::str(m.content));
    messages.list->push_back(d);
  }
  std::map<std::string, Value> globals;
  globals["messages"] = messages;
  globals["add_generation_prompt"] = Value::boolean(add_generation_prompt);
  globals["bos_token"] = Value::str(bos_token);
  globals["eos_token"] = Value::str(eos_token);
  std::string out;
  Renderer(std::move(globals)).run(program_->body, out);
  return out;
}

}  // namespace qtrain
