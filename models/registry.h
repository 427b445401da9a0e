// A name -> entry table filled at static initialisation (methods, adapter
// types): each entry registers itself from its own file, and --help and every
// "unknown name" error list what this build has. T needs `name` and `help`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace qtrain {

template <class T>
class Registry {
 public:
  explicit Registry(std::string flag) : flag_(std::move(flag)) {}
  void add(T v) {
    QT_CHECK(!v.name.empty() && !entries_.count(v.name), flag_ + " '" + v.name + "' registered twice");
    std::string name = v.name;
    entries_.emplace(std::move(name), std::move(v));
  }
  const T& find(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw Error("unknown " + flag_ + " '" + name + "' (this build has: " + list() + ")");
    return it->second;
  }
  std::vector<std::string> names() const {  // sorted
    std::vector<std::string> n;
    for (auto& [k, v] : entries_) n.push_back(k);
    return n;
  }
  std::string list() const {  // "a | b | c"
    std::string s;
    for (auto& [k, v] : entries_) s += (s.empty() ? "" : " | ") + k;
    return s;
  }
  std::string help() const {  // one indented "name: help" line each
    std::string s;
    for (auto& [k, v] : entries_) s += (s.empty() ? "  " : "\n  ") + k + ": " + v.help;
    return s;
  }

 private:
  std::string flag_;
  std::map<std::string, T> entries_;
};

}  // namespace qtrain

// At namespace scope, with designated initializers (members left out keep
// their defaults, so -Wmissing-field-initializers is off for the line). The
// library is linked whole (CMake: an object library), so this registration is
// never dropped.
#define QT_REGISTER(fn, ident, ...)                                                                   \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmissing-field-initializers\"") \
      static const bool qt_registered_##ident = (fn(__VA_ARGS__), true);                              \
  _Pragma("GCC diagnostic pop")
