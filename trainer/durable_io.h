// File I/O that survives a crash at any instant: whole files written and
// fsynced, directory entries fsynced after renames, and content digests
// (size + crc32) so a reader can tell a complete file from a torn one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace qtrain {

// Writes `content` to `path` (truncating) and fsyncs it. Runtime error on failure.
void write_file_synced(const std::string& path, const std::string& content);
// fsync of a directory, which makes the names created/renamed in it durable.
void fsync_dir(const std::string& dir);
// Whole file as a string; BadInput error naming the file when it cannot be read.
std::string read_file(const std::string& path);

// Writes the directory DIR so that a crash or a failed write at any instant
// leaves either the previous DIR or the new one, complete. fill(tmp) writes
// the files into DIR.tmp-<pid>; every file there is fsynced, then DIR is
// swapped in with renames (DIR -> DIR.old, tmp -> DIR) and the old one is
// removed, or handed to `retire` to keep. Between the renames only DIR.old is
// complete: readers must look there too. When anything before the swap fails
// (a full disk, EFBIG past `ulimit -f`), the partial DIR.tmp-<pid> is removed
// and the error rethrown, DIR untouched. Leftover DIR.tmp-<pid> of processes
// that no longer run are removed first.
void write_dir_atomically(const std::string& dir, const std::function<void(const std::string& tmp)>& fill,
                          const std::function<void(const std::string& old)>& retire = {});

struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};
FileDigest digest_file(const std::string& path);

}  // namespace qtrain
