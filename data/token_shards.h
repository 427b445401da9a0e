// llm.c-style token shards: a 256 x int32 header (magic, version, token count)
// then the tokens: magic 20240520 / version 1 = uint16 tokens (GPT-2),
// magic 20240801 / version 7 = uint32 tokens (Llama-3-size vocabularies).
// Read by random access (pread), so a rank reads only the windows it needs.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace qtrain {

// What a shard's 1024-byte header says, checked against the file's size.
struct TokenShardHeader {
  int64_t n_tokens = 0;
  int bytes_per_token = 2;
};
// header: the file's first header_bytes bytes (fewer than 1024 -> Error);
// path names the file in messages.
TokenShardHeader parse_token_shard_header(const void* header, size_t header_bytes, int64_t file_bytes,
                                          const std::string& path);

class TokenShardReader {
 public:
  explicit TokenShardReader(const std::string& path);  // bad magic/size -> Error naming the file
  ~TokenShardReader();
  TokenShardReader(const TokenShardReader&) = delete;
  TokenShardReader& operator=(const TokenShardReader&) = delete;

  int64_t size() const { return n_tokens_; }
  // tokens [begin, begin + n) into out.
  void read(int64_t begin, int64_t n, int32_t* out) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t n_tokens_ = 0;
  int bytes_per_token_ = 2;
};

class TokenShardWriter {
 public:
  // uint16 tokens when vocab_size <= 65536, else uint32.
  TokenShardWriter(const std::string& path, int vocab_size);
  ~TokenShardWriter();
  void write(const int32_t* ids, size_t n);
  void close();  // writes the header with the final count
  int64_t size() const { return n_tokens_; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  int64_t n_tokens_ = 0;
  bool wide_;
};

}  // namespace qtrain
