// Kernel classes for the --profile-kernels report (kernels/kernel_profile.h).
#include <algorithm>
#include <cctype>

#include "kernels/kernel_profile.h"

namespace qtrain {

std::string kernel_class(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  auto has = [&](std::initializer_list<const char*> keys) {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return n.find(k) != std::string::npos; });
  };
  // Order matters: our kernels' names first, library gemms last.
  if (has({"nccl"})) return "nccl";
  // cuDNN's fused attention kernels are named *sdpa* / *flash* (cudnn_generated_..._sdpa_sm90_flash_fprop_...).
  if (has({"attention", "attn", "sdpa", "flash"})) return "attention";
  if (has({"cross_entropy", "ce_rows", "lm_head", "softmax", "loss"})) return "lm-head+loss";
  if (has({"dequant", "nf4", "4bit", "int8", "quant"})) return "quant";
  if (has({"adamw"})) return "adamw";
  if (has({"norm"})) return "norm";
  if (has({"gemm", "gemv", "sm90", "sm80", "cutlass", "xmma", "nvjet", "cublas"})) return "gemm";
  return "pointwise";
}

}  // namespace qtrain
