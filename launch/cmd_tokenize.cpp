// Placeholder until this subcommand lands.
#include "launch/commands.h"

namespace qtrain::launch {

void register_tokenize(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("tokenize", "(not built yet)");
  sub->callback([&run] { run = [] { return 2; }; });
}

}  // namespace qtrain::launch
