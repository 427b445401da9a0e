// qtrain: fine-tune quantized LLMs with adapters. See README.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "kernels/device.h"
#include "kernels/error.h"
#include "launch/commands.h"

namespace {

// What this binary was built with: a GPU machine whose qtrain was built without
// nvcc runs --device auto on the CPU, and launch/quickstart.sh asks here to
// pick its preset (and to say why the GPU is not used).
std::string version_line() {
#ifdef QTRAIN_HAS_MPI
  const char* mpi = "yes";
#else
  const char* mpi = "no";
#endif
  return std::string("qtrain 0.1 (CUDA backend: ") + (qtrain::built_with_cuda() ? "yes" : "no") + ", MPI: " + mpi + ")";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "qtrain: fine-tune quantized LLMs with adapters (LoRA, QLoRA, ...), on the CPU reference backend or "
      "CUDA, data-parallel over MPI ranks.\n  mpirun -np 8 qtrain train --config configs/<preset>.json",
      "qtrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_line(), "print the version and the backends this build has (CUDA, MPI)");
  qtrain::launch::Runner run;
  using namespace qtrain::launch;
  register_train(app, run);
  register_eval(app, run);
  register_generate(app, run);
  register_export(app, run);
  register_tokenize(app, run);
  register_data(app, run);
  register_prepare(app, run);
  register_report(app, run);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    args = expand_config(app, args);
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    app.parse(args);
  } catch (const CLI::ArgumentMismatch& e) {
    // CLI11 words an option given twice as "--seq-len: At Most 1 required but received 2".
    const std::string msg = e.what();
    const size_t at = msg.find(": At Most 1 required but received ");
    if (at == std::string::npos) return app.exit(e) == 0 ? 0 : 2;
    std::fprintf(stderr, "qtrain: error: %s given more than once: give it once\n", msg.substr(0, at).c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    const std::string located = config_origin().locate(e.what());
    if (e.get_exit_code() == 0 || located == e.what()) return app.exit(e) == 0 ? 0 : 2;
    std::fprintf(stderr, "qtrain: error: %s\n", located.c_str());  // a value the --config file gave
    return 2;
  } catch (const qtrain::Error& e) {  // config file problems surface here
    std::fprintf(stderr, "qtrain: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // a library's own exception while reading a config: still one line, no abort
    std::fprintf(stderr, "qtrain: error: %s\n", e.what());
    return 2;
  }
  try {
    return run ? run() : 0;
  } catch (const qtrain::Error& e) {
    std::fprintf(stderr, "qtrain: error: %s\n", config_origin().locate(e.what()).c_str());
    return e.kind() == qtrain::ErrorKind::BadInput ? 2 : 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "qtrain: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qtrain: error: %s\n", e.what());
    return 1;
  }
}
