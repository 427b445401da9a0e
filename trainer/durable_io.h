// File I/O that survives a crash at any instant: whole files written and
// fsynced, directory entries fsynced after renames, and content digests
// (size + crc32) so a reader can tell a complete file from a torn one.
#pragma once
#include <cstdint>
#include <string>

namespace qtrain {

// Writes `content` to `path` (truncating) and fsyncs it. Runtime error on failure.
void write_file_synced(const std::string& path, const std::string& content);
// fsync of a directory, which makes the names created/renamed in it durable.
void fsync_dir(const std::string& dir);
// Whole file as a string; BadInput error naming the file when it cannot be read.
std::string read_file(const std::string& path);

struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};
FileDigest digest_file(const std::string& path);

}  // namespace qtrain
