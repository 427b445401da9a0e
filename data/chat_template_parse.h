// The parsed form of a chat template: the Jinja statement and expression
// trees chat_template.cpp renders, and the parser that builds them (lexing
// the template with transformers' trim_blocks/lstrip_blocks whitespace rules).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/chat_template_value.h"

namespace qtrain::jinja {

// ---- expression tree -----------------------------------------------------------
struct Expr;
using ExprP = std::unique_ptr<Expr>;
struct Expr {
  enum Kind { Literal, Name, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Cond, ListLit, DictLit } kind;
  std::string name;  // Name / Attr / Filter / Test / operator
  Value lit;
  std::vector<ExprP> a;                // operands; for Slice: obj, start, stop (null = absent)
  std::vector<std::string> kwargs;     // Call: names of the trailing keyword arguments
  bool negate = false;                 // Test: "is not"
};

// ---- statements --------------------------------------------------------------
struct Stmt;
using Body = std::vector<Stmt>;
struct Stmt {
  enum Kind { Text, Output, If, For, Set } kind;
  std::string text;                          // Text
  ExprP expr;                                // Output; Set value; For iterable
  std::vector<std::pair<ExprP, Body>> arms;  // If: (condition, body) for if and each elif
  Body body, else_body;                      // For body; If/For else
  std::vector<std::string> vars;             // For targets (one, or a tuple)
  ExprP filter;                              // For ... if filter
  std::string target, attr;                  // Set target (attr for "set ns.x = ...")
  int line = 0;
};

// Parses a whole template; syntax errors are qtrain::Errors naming the line.
Body parse_template(const std::string& source);

}  // namespace qtrain::jinja
