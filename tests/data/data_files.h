// Test helpers for the data readers: a scratch directory and writers for
// plain, gzip'd and .bin files.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "data/stream.h"
#include "data/tokenizer.h"
#include "tests/test_util.h"

namespace qtrain::testing {

// A fresh directory per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("qtrain_" + std::string(info ? info->name() : "t") + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline void write_gz(const std::string& path, const std::string& text, int level = 6) {
  gzFile g = gzopen(path.c_str(), ("wb" + std::to_string(level)).c_str());
  gzwrite(g, text.data(), unsigned(text.size()));
  gzclose(g);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::string gpt2_dir() { return shared_dir() + "/data/gpt2-tokenizer"; }
inline std::string csn_root() { return shared_dir() + "/data/codesearchnet-format"; }

// A stream that reads path once, in file order (no shuffle, no loop), as evaluation does.
inline StreamConfig in_order(const std::string& path, int seq_len, int batch_size) {
  StreamConfig c;
  c.path = path;
  c.seq_len = seq_len, c.batch_size = batch_size;
  c.shuffle = c.loop = false;
  return c;
}

// Loaded once per test binary (encoder.json is 1 MB of JSON).
inline std::shared_ptr<const Tokenizer> gpt2() {
  static std::shared_ptr<const Tokenizer> tok = Tokenizer::load(gpt2_dir());
  return tok;
}

}  // namespace qtrain::testing
