#include "kernels/error.h"

namespace qtrain {

[[noreturn]] void fail_internal(const char* file, int line, const std::string& msg) {
  throw Error(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " + msg,
              ErrorKind::Runtime);
}

}  // namespace qtrain
