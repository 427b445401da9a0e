#include "data/gz_lines.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "kernels/error.h"

namespace qtrain {

namespace {
constexpr size_t kChunk = 256 << 10;
}

struct LineReader::Inflater {
  z_stream s{};
  bool member_done = false;  // the last member ended cleanly (Z_STREAM_END)
  Inflater() {
    // 16 + MAX_WBITS: gzip wrapper only.
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) throw Error("zlib: inflateInit2 failed", ErrorKind::Runtime);
  }
  ~Inflater() { inflateEnd(&s); }
};

LineReader::LineReader(const std::string& path, size_t max_line) : path_(path), max_line_(max_line) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw Error(path + ": cannot open: " + std::strerror(errno));
  // fopen takes a directory on Linux; the first read would fail as a vague I/O error.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::fclose(file_);
    file_ = nullptr;
    throw Error(path + ": is a directory, not a file");
  }
  unsigned char magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, file_);
  std::rewind(file_);
  gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  // The name promises gzip: without the magic, reading on as plain text would report random
  // bytes as invalid UTF-8 somewhere, or train on a mislabelled file without a word.
  if (!gzip_ && got > 0 && path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    char first[8];
    std::snprintf(first, sizeof(first), "%02x %02x", magic[0], got == 2 ? magic[1] : 0);
    std::fclose(file_);
    file_ = nullptr;
    throw Error(path + ": not gzip data (its first bytes are " + first + ", gzip's are 1f 8b); rename a plain " +
                "JSON-lines file to .jsonl");
  }
  in_.resize(kChunk);
  if (gzip_) z_ = std::make_unique<Inflater>();
}

LineReader::~LineReader() {
  if (file_) std::fclose(file_);
}

bool LineReader::fill() {
  if (eof_) return false;
  // Drop the consumed prefix so the buffer holds at most one line + one chunk.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (!gzip_) {
    size_t n = std::fread(in_.data(), 1, in_.size(), file_);
    if (n == 0) {
      if (std::ferror(file_)) throw Error(path_ + ": read error after line " + std::to_string(line_no_), ErrorKind::Runtime);
      eof_ = true;
      return false;
    }
    buf_.append(in_.data(), n);
    high_water_ = std::max(high_water_, buf_.capacity());
    return true;
  }
  z_stream& s = z_->s;
  size_t before = buf_.size();
  while (buf_.size() == before) {
    if (s.avail_in == 0) {
      size_t n = std::fread(in_.data(), 1, in_.size(), file_);
      if (n == 0) {
        if (std::ferror(file_)) throw Error(path_ + ": read error after line " + std::to_string(line_no_), ErrorKind::Runtime);
        if (!z_->member_done)
          throw Error(path_ + ": truncated gzip stream (file ends inside compressed data, after line " +
                      std::to_string(line_no_) + ")");
        eof_ = true;
        return false;
      }
      s.next_in = reinterpret_cast<Bytef*>(in_.data());
      s.avail_in = uInt(n);
    }
    if (z_->member_done) {
      // Another gzip member follows (concatenated .gz files are valid gzip).
      inflateReset(&s);
      z_->member_done = false;
    }
    buf_.resize(before + kChunk);
    s.next_out = reinterpret_cast<Bytef*>(&buf_[before]);
    s.avail_out = uInt(kChunk);
    int rc = inflate(&s, Z_NO_FLUSH);
    buf_.resize(before + (kChunk - s.avail_out));
    if (rc == Z_STREAM_END) {
      z_->member_done = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw Error(path_ + ": corrupt gzip data after line " + std::to_string(line_no_) + ": " +
                  (s.msg ? s.msg : "zlib error " + std::to_string(rc)));
    }
  }
  high_water_ = std::max(high_water_, buf_.capacity());
  return true;
}

bool LineReader::next(std::string_view& line) {
  size_t scan = pos_;
  while (true) {
    size_t nl = buf_.find('\n', scan);
    if (nl != std::string::npos) {
      line = std::string_view(buf_).substr(pos_, nl - pos_);
      pos_ = nl + 1;
      break;
    }
    if (buf_.size() - pos_ > max_line_)
      throw Error(path_ + ": line " + std::to_string(line_no_ + 1) + " is longer than " +
                  std::to_string(max_line_ >> 20) + " MiB (not a JSON-lines file?)");
    size_t done = buf_.size() - pos_;
    if (!fill()) {
      if (pos_ >= buf_.size()) return false;
      line = std::string_view(buf_).substr(pos_);  // last line without '\n'
      pos_ = buf_.size();
      break;
    }
    scan = pos_ + done;  // fill() moved the unreturned part to the front
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ++line_no_;
  return true;
}

}  // namespace qtrain
