#include "data/chat_template_parse.h"

#include <algorithm>
#include <cctype>

#include "kernels/error.h"

namespace qtrain::jinja {

namespace {

// ---- template lexer: text / {{ expr }} / {% stmt %} ---------------------------
struct Segment {
  enum Kind { Text, Expr, Stmt } kind;
  std::string s;
  int line;
};

// Position of the "}}" / "%}" closing a tag, skipping quoted strings.
size_t find_close(const std::string& src, size_t from, char kind) {
  char quote = 0;
  for (size_t k = from; k + 1 < src.size(); ++k) {
    char c = src[k];
    if (quote) {
      if (c == '\\') ++k;
      else if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == kind && src[k + 1] == '}') {
      return k;
    }
  }
  return std::string::npos;
}

std::vector<Segment> lex_template(const std::string& src) {
  std::vector<Segment> out;
  size_t pos = 0;
  bool strip_next = false;  // the previous tag ended with "-"
  auto line_of = [&](size_t at) { return 1 + int(std::count(src.begin(), src.begin() + long(at), '\n')); };
  while (pos <= src.size()) {
    size_t t = pos;
    while ((t = src.find('{', t)) != std::string::npos && t + 1 < src.size() && src[t + 1] != '{' &&
           src[t + 1] != '%' && src[t + 1] != '#')
      ++t;
    if (t + 1 >= src.size()) t = std::string::npos;
    std::string text = src.substr(pos, t == std::string::npos ? std::string::npos : t - pos);
    if (strip_next) text = strip(text, kSpace, true, false);
    if (t == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::Text, text, line_of(pos)});
      break;
    }
    const char kind = src[t + 1];
    size_t inner = t + 2;
    const char mod = inner < src.size() ? src[inner] : 0;
    if (mod == '-') {
      text = strip(text, kSpace, false, true);
    } else if (kind != '{' && mod != '+') {
      // lstrip_blocks: drop spaces/tabs between the start of the line and a block tag.
      size_t nl = text.rfind('\n');
      size_t l = nl == std::string::npos ? 0 : nl + 1;
      bool line_start = nl != std::string::npos || pos == 0 || src[pos - 1] == '\n';
      if (line_start && text.find_first_not_of(" \t", l) == std::string::npos) text.resize(l);
    }
    if (mod == '-' || mod == '+') ++inner;
    if (!text.empty()) out.push_back({Segment::Text, text, line_of(pos)});
    size_t close = kind == '#' ? src.find("#}", inner) : find_close(src, inner, kind == '{' ? '}' : '%');
    if (close == std::string::npos) fail("line " + std::to_string(line_of(t)) + ": tag is never closed");
    std::string body = src.substr(inner, close - inner);
    strip_next = !body.empty() && body.back() == '-';
    if (strip_next) body.pop_back();
    pos = close + 2;
    if (kind != '{' && !strip_next) {  // trim_blocks: the newline after a block tag goes
      if (src.compare(pos, 1, "\n") == 0) pos += 1;
      else if (src.compare(pos, 2, "\r\n") == 0) pos += 2;
    }
    if (kind != '#') out.push_back({kind == '{' ? Segment::Expr : Segment::Stmt, body, line_of(t)});
  }
  return out;
}

// ---- expression tokens ---------------------------------------------------------
struct Tok {
  enum Kind { Name, Str, Int, Float, Op, End } kind;
  std::string s;
  int64_t i = 0;
  double f = 0;
};

std::vector<Tok> lex_expr(const std::string& s, int line) {
  std::vector<Tok> out;
  auto where = [&] { return "line " + std::to_string(line) + ": "; };
  size_t k = 0;
  while (k < s.size()) {
    char c = s[k];
    if (kSpace.find(c) != std::string::npos) { ++k; continue; }
    if (std::isalpha(uint8_t(c)) || c == '_') {
      size_t e = k;
      while (e < s.size() && (std::isalnum(uint8_t(s[e])) || s[e] == '_')) ++e;
      out.push_back({Tok::Name, s.substr(k, e - k)});
      k = e;
    } else if (std::isdigit(uint8_t(c))) {
      size_t e = k;
      while (e < s.size() && std::isdigit(uint8_t(s[e]))) ++e;
      if (e + 1 < s.size() && s[e] == '.' && std::isdigit(uint8_t(s[e + 1]))) {
        ++e;
        while (e < s.size() && std::isdigit(uint8_t(s[e]))) ++e;
        Tok t{Tok::Float, s.substr(k, e - k)};
        t.f = std::stod(t.s);
        out.push_back(t);
      } else {
        Tok t{Tok::Int, s.substr(k, e - k)};
        if (e - k > 18) fail(where() + "integer literal too large");
        t.i = std::stoll(t.s);
        out.push_back(t);
      }
      k = e;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t e = k + 1;
      for (; e < s.size() && s[e] != c; ++e) {
        if (s[e] == '\\' && e + 1 < s.size()) {
          char x = s[++e];
          v += x == 'n' ? '\n' : x == 't' ? '\t' : x == 'r' ? '\r' : x;
        } else {
          v += s[e];
        }
      }
      if (e >= s.size()) fail(where() + "unterminated string literal");
      out.push_back({Tok::Str, v});
      k = e + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two)
        if (s.compare(k, 2, t) == 0) op = t;
      if (op.size() == 1 && std::string("+-*/%~<>()[]{}.,:|=").find(c) == std::string::npos)
        fail(where() + "unexpected character '" + op + "'");
      out.push_back({Tok::Op, op});
      k += op.size();
    }
  }
  out.push_back({Tok::End, ""});
  return out;
}

ExprP node(Expr::Kind k, std::string name = "") {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->name = std::move(name);
  return e;
}

class ExprParser {
 public:
  ExprParser(const std::string& s, int line) : toks_(lex_expr(s, line)), line_(line) {}
  ExprP parse_all() {
    ExprP e = expr();
    expect_end();
    return e;
  }
  ExprP expr() { return cond(); }
  ExprP expr_no_cond() { return or_(); }
  bool at_name(const char* n) const { return cur().kind == Tok::Name && cur().s == n; }
  bool at_op(const char* o) const { return cur().kind == Tok::Op && cur().s == o; }
  const Tok& cur() const { return toks_[p_]; }
  std::string name() {
    if (cur().kind != Tok::Name) error("expected a name");
    return toks_[p_++].s;
  }
  void expect_op(const char* o) {
    if (!at_op(o)) error(std::string("expected '") + o + "'");
    ++p_;
  }
  void expect_name(const char* n) {
    if (!at_name(n)) error(std::string("expected '") + n + "'");
    ++p_;
  }
  void expect_end() {
    if (cur().kind != Tok::End) error("unexpected '" + cur().s + "'");
  }
  [[noreturn]] void error(const std::string& m) const {
    fail("line " + std::to_string(line_) + ": " + m + (cur().kind == Tok::End ? " at the end of the tag" : ""));
  }

 private:
  ExprP binary(std::string op, ExprP l, ExprP r) {
    ExprP e = node(Expr::Binary, std::move(op));
    e->a.push_back(std::move(l));
    e->a.push_back(std::move(r));
    return e;
  }
  ExprP cond() {
    ExprP e = or_();
    if (at_name("if")) {
      ++p_;
      ExprP c = node(Expr::Cond);
      ExprP test = or_();
      ExprP other = at_name("else") ? (++p_, cond()) : node(Expr::Literal);  // literal undefined
      c->a.push_back(std::move(test));
      c->a.push_back(std::move(e));
      c->a.push_back(std::move(other));
      return c;
    }
    return e;
  }
  ExprP or_() {
    ExprP e = and_();
    while (at_name("or")) ++p_, e = binary("or", std::move(e), and_());
    return e;
  }
  ExprP and_() {
    ExprP e = not_();
    while (at_name("and")) ++p_, e = binary("and", std::move(e), not_());
    return e;
  }
  ExprP not_() {
    DepthGuard guard(*this);
    if (at_name("not")) {
      ++p_;
      ExprP e = node(Expr::Unary, "not");
      e->a.push_back(not_());
      return e;
    }
    return compare();
  }
  ExprP compare() {
    ExprP e = math1();
    for (;;) {
      static const char* ops[] = {"==", "!=", "<", ">", "<=", ">="};
      std::string op;
      for (const char* o : ops)
        if (at_op(o)) op = o;
      if (!op.empty()) {
        ++p_;
      } else if (at_name("in")) {
        ++p_, op = "in";
      } else if (at_name("not") && toks_[p_ + 1].kind == Tok::Name && toks_[p_ + 1].s == "in") {
        p_ += 2, op = "not in";
      } else {
        return e;
      }
      e = binary(op, std::move(e), math1());
    }
  }
  ExprP math1() {
    ExprP e = concat();
    while (at_op("+") || at_op("-")) {
      std::string op = toks_[p_++].s;
      e = binary(op, std::move(e), concat());
    }
    return e;
  }
  ExprP concat() {
    ExprP e = math2();
    while (at_op("~")) ++p_, e = binary("~", std::move(e), math2());
    return e;
  }
  ExprP math2() {
    ExprP e = unary();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      std::string op = toks_[p_++].s;
      e = binary(op, std::move(e), unary());
    }
    return e;
  }
  // Every recursion of the grammar passes through unary() or not_(): bound it
  // so a hostile template cannot overflow the stack.
  struct DepthGuard {
    ExprParser& p;
    explicit DepthGuard(ExprParser& q) : p(q) {
      if (++p.depth_ > kMaxDepth) p.error("expression nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };
  static constexpr int kMaxDepth = 200;
  int depth_ = 0;

  ExprP unary() {
    DepthGuard guard(*this);
    if (at_op("-") || at_op("+")) {
      std::string op = toks_[p_++].s;
      ExprP e = node(Expr::Unary, op);
      e->a.push_back(unary());
      return filters(std::move(e));
    }
    return filters(postfix(primary()));
  }
  ExprP primary() {
    const Tok t = cur();
    ++p_;
    if (t.kind == Tok::Str) {
      ExprP e = node(Expr::Literal);
      e->lit = Value::str(t.s);
      while (cur().kind == Tok::Str) e->lit.s += toks_[p_++].s;  // 'a' 'b' == 'ab'
      return e;
    }
    if (t.kind == Tok::Int || t.kind == Tok::Float) {
      ExprP e = node(Expr::Literal);
      e->lit = t.kind == Tok::Int ? Value::integer(t.i) : Value::real(t.f);
      return e;
    }
    if (t.kind == Tok::Name) {
      ExprP e = node(Expr::Literal);
      if (t.s == "true" || t.s == "True") e->lit = Value::boolean(true);
      else if (t.s == "false" || t.s == "False") e->lit = Value::boolean(false);
      else if (t.s == "none" || t.s == "None") e->lit = Value::none();
      else return node(Expr::Name, t.s);
      return e;
    }
    if (t.kind == Tok::Op && t.s == "(") {
      ExprP e = expr();
      expect_op(")");
      return e;
    }
    if (t.kind == Tok::Op && t.s == "[") {
      ExprP e = node(Expr::ListLit);
      while (!at_op("]")) {
        e->a.push_back(expr());
        if (!at_op("]")) expect_op(",");
      }
      ++p_;
      return e;
    }
    if (t.kind == Tok::Op && t.s == "{") {
      ExprP e = node(Expr::DictLit);
      while (!at_op("}")) {
        e->a.push_back(expr());
        expect_op(":");
        e->a.push_back(expr());
        if (!at_op("}")) expect_op(",");
      }
      ++p_;
      return e;
    }
    --p_;
    error("unexpected '" + t.s + "'");
  }
  // (args) after a callee/filter/test; keyword args come last
  void call_args(Expr& e) {
    expect_op("(");
    while (!at_op(")")) {
      if (cur().kind == Tok::Name && toks_[p_ + 1].kind == Tok::Op && toks_[p_ + 1].s == "=") {
        e.kwargs.push_back(name());
        ++p_;
      } else if (!e.kwargs.empty()) {
        error("positional argument after a keyword argument");
      }
      e.a.push_back(expr());
      if (!at_op(")")) expect_op(",");
    }
    ++p_;
  }
  ExprP postfix(ExprP e) {
    for (;;) {
      if (at_op(".")) {
        ++p_;
        ExprP x = node(Expr::Attr, name());
        x->a.push_back(std::move(e));
        e = std::move(x);
      } else if (at_op("[")) {
        ++p_;
        ExprP start = at_op(":") ? nullptr : expr();
        if (at_op(":")) {
          ++p_;
          ExprP x = node(Expr::Slice);
          x->a.push_back(std::move(e));
          x->a.push_back(std::move(start));
          x->a.push_back(at_op("]") ? nullptr : expr());
          e = std::move(x);
        } else {
          ExprP x = node(Expr::Index);
          x->a.push_back(std::move(e));
          x->a.push_back(std::move(start));
          e = std::move(x);
        }
        expect_op("]");
      } else if (at_op("(")) {
        ExprP x = node(Expr::Call);
        x->a.push_back(std::move(e));
        call_args(*x);
        e = std::move(x);
      } else {
        return e;
      }
    }
  }
  ExprP filters(ExprP e) {
    for (;;) {
      if (at_op("|")) {
        ++p_;
        ExprP f = node(Expr::Filter, name());
        f->a.push_back(std::move(e));
        if (at_op("(")) call_args(*f);
        e = std::move(f);
      } else if (at_name("is")) {
        ++p_;
        ExprP t = node(Expr::Test);
        if (at_name("not")) ++p_, t->negate = true;
        t->name = name();
        t->a.push_back(std::move(e));
        if (at_op("(")) call_args(*t);
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::vector<Tok> toks_;
  size_t p_ = 0;
  int line_;
};

class StmtParser {
 public:
  explicit StmtParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  Body parse_top() {
    std::string end;
    Body b = body({}, end);
    if (!end.empty()) fail("line " + std::to_string(segs_[k_ - 1].line) + ": unexpected {% " + end + " %}");
    return b;
  }

 private:
  // Parses until one of `ends` (a keyword opening a Stmt segment); `found` is
  // that keyword ("" at the end of the template), its segment consumed and
  // its parser left in `rest_`.
  Body body(const std::vector<std::string>& ends, std::string& found) {
    if (++depth_ > 100) fail("blocks nested more than 100 deep");
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    Body out;
    while (k_ < segs_.size()) {
      const Segment& s = segs_[k_++];
      if (s.kind == Segment::Text) {
        Stmt t{};
        t.kind = Stmt::Text;
        t.text = s.s;
        out.push_back(std::move(t));
        continue;
      }
      if (s.kind == Segment::Expr) {
        Stmt o{};
        o.kind = Stmt::Output;
        o.line = s.line;
        o.expr = ExprParser(s.s, s.line).parse_all();
        out.push_back(std::move(o));
        continue;
      }
      rest_ = std::make_unique<ExprParser>(s.s, s.line);
      std::string kw = rest_->name();
      if (std::find(ends.begin(), ends.end(), kw) != ends.end()) {
        found = kw;
        return out;
      }
      out.push_back(statement(kw, s.line));
    }
    if (!ends.empty()) fail("missing {% " + ends.back() + " %} at the end of the template");
    found.clear();
    return out;
  }

  Stmt statement(const std::string& kw, int line) {
    Stmt st{};
    st.kind = Stmt::Text;
    st.line = line;
    std::string end;
    if (kw == "if") {
      st.kind = Stmt::If;
      ExprP c = rest_->parse_all();
      for (;;) {
        Body b = body({"elif", "else", "endif"}, end);
        st.arms.emplace_back(std::move(c), std::move(b));
        if (end == "elif") {
          c = rest_->parse_all();
          continue;
        }
        if (end == "else") {
          rest_->expect_end();
          st.else_body = body({"endif"}, end);
        }
        rest_->expect_end();
        return st;
      }
    }
    if (kw == "for") {
      st.kind = Stmt::For;
      st.vars.push_back(rest_->name());
      while (rest_->at_op(",")) rest_->expect_op(","), st.vars.push_back(rest_->name());
      rest_->expect_name("in");
      st.expr = rest_->expr_no_cond();  // a trailing "if" filters the loop
      if (rest_->at_name("if")) rest_->expect_name("if"), st.filter = rest_->expr();
      rest_->expect_end();
      st.body = body({"else", "endfor"}, end);
      if (end == "else") {
        rest_->expect_end();
        st.else_body = body({"endfor"}, end);
      }
      rest_->expect_end();
      return st;
    }
    if (kw == "set") {
      st.kind = Stmt::Set;
      st.target = rest_->name();
      if (rest_->at_op(".")) rest_->expect_op("."), st.attr = rest_->name();
      if (!rest_->at_op("=")) fail("line " + std::to_string(line) + ": block {% set %} is not supported");
      rest_->expect_op("=");
      st.expr = rest_->parse_all();
      return st;
    }
    if (kw == "endif" || kw == "endfor" || kw == "elif" || kw == "else")
      fail("line " + std::to_string(line) + ": unexpected {% " + kw + " %}");
    fail("line " + std::to_string(line) + ": unsupported tag {% " + kw + " %}");
  }

  std::vector<Segment> segs_;
  size_t k_ = 0;
  int depth_ = 0;
  std::unique_ptr<ExprParser> rest_;
};

}  // namespace

Body parse_template(const std::string& source) { return StmtParser(lex_template(source)).parse_top(); }

}  // namespace qtrain::jinja
