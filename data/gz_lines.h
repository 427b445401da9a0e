// LineReader: the lines of a text file, plain or gzip'd (detected by its magic
// bytes, concatenated gzip members included), streamed through zlib with a
// bounded buffer: memory stays flat whatever the file size. Lines longer than
// max_line are an error (a corrupt or binary file), never unbounded growth.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qtrain {

class LineReader {
 public:
  static constexpr size_t kDefaultMaxLine = 64u << 20;

  explicit LineReader(const std::string& path, size_t max_line = kDefaultMaxLine);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (and '\r'); valid until the next call.
  // false at the end of the file. Truncated/corrupt gzip -> qtrain::Error naming
  // the file and the line where it broke.
  bool next(std::string_view& line);

  int64_t line_no() const { return line_no_; }  // 1-based number of the last line returned
  const std::string& path() const { return path_; }
  bool gzip() const { return gzip_; }
  // Largest the line buffer ever grew (bytes): the streaming-memory witness.
  size_t buffer_high_water() const { return high_water_; }

 private:
  bool fill();  // appends decoded bytes to buf_; false at EOF

  std::string path_;
  size_t max_line_;
  FILE* file_ = nullptr;
  bool gzip_ = false;
  struct Inflater;
  std::unique_ptr<Inflater> z_;
  std::vector<char> in_;   // compressed input chunk
  std::string buf_;        // decoded bytes not yet returned
  size_t pos_ = 0;         // start of the unreturned part of buf_
  bool eof_ = false;
  int64_t line_no_ = 0;
  size_t high_water_ = 0;
};

}  // namespace qtrain
