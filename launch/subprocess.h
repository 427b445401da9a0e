// Running the helper scripts shipped in launch/ (Python: corpus extraction,
// report plots) from the qtrain binary.
#pragma once
#include <string>
#include <vector>

namespace qtrain::launch {

// launch/<file> of the source tree above the binary (build/qtrain ->
// launch/<file>), or share/qtrain/<file> above it; $env_var overrides.
// Runtime Error naming env_var when none exists.
std::string find_launch_script(const std::string& file, const char* env_var);

// Runs args[0] (looked up in PATH) with args, waits, returns its exit code;
// 127 when it cannot be started. quiet sends its stdout and stderr to /dev/null.
int run_program(const std::vector<std::string>& args, bool quiet = false);

}  // namespace qtrain::launch
