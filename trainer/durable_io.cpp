#include "trainer/durable_io.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>
#include <vector>

#include "kernels/error.h"

namespace qtrain {

static std::string sys_error() { return std::strerror(errno); }

void write_file_synced(const std::string& path, const std::string& content) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create (" + sys_error() + ")", ErrorKind::Runtime);
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = ok && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw Error(path + ": write failed (" + sys_error() + ")", ErrorKind::Runtime);
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw Error(dir + ": cannot open directory to fsync (" + sys_error() + ")", ErrorKind::Runtime);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(dir + ": fsync of directory failed (" + sys_error() + ")", ErrorKind::Runtime);
}

namespace fs = std::filesystem;

namespace {

std::string strip_slash(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// DIR.tmp-<pid> of processes that no longer run are torn writes: remove them.
// A live writer's directory is left alone.
void remove_stale_tmp_dirs(const std::string& dir) {
  fs::path base(dir);
  fs::path parent = base.parent_path().empty() ? fs::path(".") : base.parent_path();
  std::string prefix = base.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    bool alive = pid > 0 && pid != long(getpid()) && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
    if (alive) continue;
    spdlog::warn("removing incomplete {}", entry.path().string());
    fs::remove_all(entry.path(), ec);
  }
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error("cannot rename " + from.string() + " to " + to.string() + " (" + ec.message() + ")",
                      ErrorKind::Runtime);
}

void fsync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open to fsync (" + sys_error() + ")", ErrorKind::Runtime);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed (" + sys_error() + ")", ErrorKind::Runtime);
}

}  // namespace

void write_dir_atomically(const std::string& dir_in, const std::function<void(const std::string& tmp)>& fill,
                          const std::function<void(const std::string& old)>& retire) {
  const std::string dir = strip_slash(dir_in);
  remove_stale_tmp_dirs(dir);
  const fs::path tmp = dir + ".tmp-" + std::to_string(getpid());
  const fs::path old = dir + ".old";
  const fs::path parent = fs::path(dir).parent_path().empty() ? fs::path(".") : fs::path(dir).parent_path();
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directories(tmp, ec);
    if (ec) throw Error(tmp.string() + ": cannot create directory (" + ec.message() + ")", ErrorKind::Runtime);
    fill(tmp.string());
    for (const auto& e : fs::recursive_directory_iterator(tmp))
      if (e.is_regular_file()) fsync_file(e.path().string());
    fsync_dir(tmp.string());
    // The swap. Between the two renames only DIR.old is complete.
    if (fs::exists(dir)) {
      fs::remove_all(old, ec);  // a DIR.old next to a DIR is stale: DIR is newer
      rename_or_throw(dir, old);
      fsync_dir(parent.string());
    }
    rename_or_throw(tmp, dir);
    fsync_dir(parent.string());
  } catch (...) {
    fs::remove_all(tmp, ec);  // a partial write must not keep the disk full
    throw;
  }
  if (!fs::exists(old)) return;
  if (retire)
    retire(old.string());
  else
    fs::remove_all(old, ec);  // also the DIR.old a crash mid-swap left behind
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (" + sys_error() + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FileDigest digest_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open (" + sys_error() + ")");
  FileDigest d;
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    crc = crc32_z(crc, buf.data(), n);
    d.bytes += n;
  }
  bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) throw Error(path + ": read error (" + sys_error() + ")", ErrorKind::Runtime);
  d.crc32 = uint32_t(crc);
  return d;
}

}  // namespace qtrain
