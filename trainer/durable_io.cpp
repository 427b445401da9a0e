#include "trainer/durable_io.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
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
