#include <spdlog/spdlog.h>

#include "dist/communicator.h"

namespace qtrain {

// A single rank has no peers to take down; the caller goes on to report the
// error and exit, so only log what happened.
void SingleCommunicator::abort(const std::string& why, int) { spdlog::debug("single rank: abort requested: {}", why); }

}  // namespace qtrain
