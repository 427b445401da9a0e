#include "data/token_shards.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "kernels/error.h"

namespace qtrain {

namespace {
constexpr int32_t kMagic16 = 20240520, kVersion16 = 1;
constexpr int32_t kMagic32 = 20240801, kVersion32 = 7;
constexpr int64_t kHeaderBytes = 256 * 4;
}  // namespace

TokenShardHeader parse_token_shard_header(const void* header, size_t header_bytes, int64_t file_bytes,
                                          const std::string& path) {
  int32_t h[256];
  if (header_bytes < sizeof(h)) throw Error(path + ": shorter than the 1024-byte .bin header");
  std::memcpy(h, header, sizeof(h));
  TokenShardHeader out;
  if (h[0] == kMagic16 && h[1] == kVersion16) out.bytes_per_token = 2;
  else if (h[0] == kMagic32 && h[1] == kVersion32) out.bytes_per_token = 4;
  else
    throw Error(path + ": not a token shard: header magic " + std::to_string(h[0]) + " version " +
                std::to_string(h[1]) + " (expected 20240520 v1 for uint16 or 20240801 v7 for uint32)");
  out.n_tokens = uint32_t(h[2]);
  int64_t want = kHeaderBytes + out.n_tokens * out.bytes_per_token;
  if (file_bytes != want)
    throw Error(path + ": header says " + std::to_string(out.n_tokens) + " tokens (" + std::to_string(want) +
                " bytes) but the file has " + std::to_string(file_bytes) + " bytes");
  return out;
}

TokenShardReader::TokenShardReader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY);
  if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  int32_t h[256];
  ssize_t got = ::pread(fd_, h, sizeof(h), 0);
  struct stat st {};
  ::fstat(fd_, &st);
  try {
    TokenShardHeader hdr = parse_token_shard_header(h, got < 0 ? 0 : size_t(got), int64_t(st.st_size), path);
    n_tokens_ = hdr.n_tokens;
    bytes_per_token_ = hdr.bytes_per_token;
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

TokenShardReader::~TokenShardReader() {
  if (fd_ >= 0) ::close(fd_);
}

void TokenShardReader::read(int64_t begin, int64_t n, int32_t* out) const {
  QT_CHECK(begin >= 0 && begin + n <= n_tokens_, "token shard read out of range");
  size_t bytes = size_t(n) * bytes_per_token_;
  std::vector<char> buf(bytes);
  size_t got = 0;
  while (got < bytes) {
    ssize_t r = ::pread(fd_, buf.data() + got, bytes - got, kHeaderBytes + begin * bytes_per_token_ + got);
    if (r <= 0) throw Error(path_ + ": read failed at token " + std::to_string(begin), ErrorKind::Runtime);
    got += size_t(r);
  }
  if (bytes_per_token_ == 2) {
    const auto* p = reinterpret_cast<const uint16_t*>(buf.data());
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else {
    std::memcpy(out, buf.data(), bytes);
  }
}

TokenShardWriter::TokenShardWriter(const std::string& path, int vocab_size) : path_(path), wide_(vocab_size > 65536) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) throw Error(path + ": cannot create: " + std::strerror(errno), ErrorKind::Runtime);
  int32_t h[256] = {};
  std::fwrite(h, sizeof(h), 1, f_);  // placeholder until close()
}

TokenShardWriter::~TokenShardWriter() {
  if (f_) std::fclose(f_);
}

void TokenShardWriter::write(const int32_t* ids, size_t n) {
  if (wide_) {
    std::fwrite(ids, 4, n, f_);
  } else {
    std::vector<uint16_t> v(ids, ids + n);
    std::fwrite(v.data(), 2, n, f_);
  }
  n_tokens_ += int64_t(n);
}

void TokenShardWriter::close() {
  if (!f_) return;
  int32_t h[256] = {};
  h[0] = wide_ ? kMagic32 : kMagic16;
  h[1] = wide_ ? kVersion32 : kVersion16;
  h[2] = int32_t(n_tokens_);
  std::fseek(f_, 0, SEEK_SET);
  std::fwrite(h, sizeof(h), 1, f_);
  bool bad = std::ferror(f_);
  std::fclose(f_);
  f_ = nullptr;
  if (bad) throw Error(path_ + ": write failed", ErrorKind::Runtime);
}

}  // namespace qtrain
