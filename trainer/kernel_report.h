// The --profile-kernels report: GPU time per kernel class and the top kernels,
// per training step, logged and written as JSON.
#pragma once
#include <string>
#include <vector>

#include "kernels/kernel_profile.h"

namespace qtrain {

void write_kernel_profile(const std::vector<KernelTime>& kernels, int64_t steps, const std::string& json_path);

}  // namespace qtrain
