// qtrain::Error — the one error type. It carries enough context to act on:
// the file, the field or line, and what was expected. Only launch/ catches it.
#pragma once
#include <stdexcept>
#include <string>

namespace qtrain {

enum class ErrorKind {
  BadInput,  // user input: files, configs, flags. launch/ exits 2.
  Runtime,   // CUDA, NCCL, I/O failures. launch/ exits 1.
  OutOfMemory,  // the GPU ran out of memory (the trainer adds what to change). launch/ exits 1.
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, ErrorKind kind = ErrorKind::BadInput)
      : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Internal invariant failures (programming errors, never user input).
[[noreturn]] void fail_internal(const char* file, int line, const std::string& msg);

}  // namespace qtrain

#define QT_CHECK(cond, msg)                                                     \
  do {                                                                          \
    if (!(cond)) ::qtrain::fail_internal(__FILE__, __LINE__, std::string(msg)); \
  } while (0)
