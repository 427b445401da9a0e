// The main() a fuzz target is linked with when libFuzzer is not available
// (g++, CI): feeds every file under the given directories (or the given
// files) to LLVMFuzzerTestOneInput once. A target rejects bad input by
// returning; anything else (a trap, a sanitizer report, an escaping
// exception) fails the run, and the file being replayed is printed first so
// the failure names it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) inputs.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      inputs.push_back(argv[i]);
    } else {
      std::fprintf(stderr, "%s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "no inputs to replay (an empty corpus tests nothing)\n");
    return 2;
  }
  std::sort(inputs.begin(), inputs.end());
  int failed = 0;
  for (const auto& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", p.c_str(), bytes.size());
    std::fflush(stderr);
    try {
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "FAILED %s: uncaught exception: %s\n", p.c_str(), e.what());
      ++failed;
    } catch (...) {
      std::fprintf(stderr, "FAILED %s: uncaught non-std exception\n", p.c_str());
      ++failed;
    }
  }
  std::fprintf(stderr, "%zu inputs replayed, %d failed\n", inputs.size(), failed);
  return failed ? 1 : 0;
}
