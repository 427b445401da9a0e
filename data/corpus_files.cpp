#include "data/corpus_files.h"

#include <algorithm>
#include <filesystem>

#include "kernels/error.h"

namespace qtrain {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

bool data_file(const std::string& name) {
  return ends_with(name, ".jsonl") || ends_with(name, ".jsonl.gz") || ends_with(name, ".json.gz") ||
         ends_with(name, ".bin");
}

// Natural order: python_train_2 before python_train_10.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isdigit(static_cast<unsigned char>(a[i])) && isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2, j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && data_file(e.path().filename().string())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end(), natural_less);
  return out;
}

bool mentions_split(const std::string& name, const std::string& split) {
  if (name.find(split) != std::string::npos) return true;
  return split == "valid" && name.find("_val") != std::string::npos;
}

}  // namespace

bool is_token_shard(const std::string& path) { return ends_with(path, ".bin"); }

std::vector<std::string> corpus_files(const std::string& path, const std::string& split) {
  fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error(path + ": no such file or directory");
  if (!fs::is_directory(p, ec)) return {path};
  std::vector<std::string> files;
  // CodeSearchNet release tree: <root>/<lang>/final/jsonl/<split>/, or <root> = <lang>/final/jsonl.
  std::vector<fs::path> candidates = {p / split, p / "final" / "jsonl" / split};
  for (const auto& e : fs::directory_iterator(p))
    if (e.is_directory()) candidates.push_back(e.path() / "final" / "jsonl" / split);
  for (const auto& c : candidates)
    if (fs::is_directory(c, ec)) {
      auto f = files_in(c);
      files.insert(files.end(), f.begin(), f.end());
    }
  if (files.empty()) {
    auto all = files_in(p);
    for (const auto& f : all)
      if (mentions_split(fs::path(f).filename().string(), split)) files.push_back(f);
    bool any_split_names = false;
    for (const auto& f : all)
      for (const char* s : {"train", "valid", "_val", "test"})
        if (fs::path(f).filename().string().find(s) != std::string::npos) any_split_names = true;
    if (files.empty() && !any_split_names) files = all;
  }
  if (files.empty())
    throw Error(path + ": no data files for split '" + split +
                "' (expected <lang>/final/jsonl/" + split + "/*.jsonl.gz, or .jsonl/.jsonl.gz/.bin files)");
  return files;
}

}  // namespace qtrain
