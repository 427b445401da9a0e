#include "models/bnb4_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "kernels/quant/dynamic_map.h"
#include "models/safetensors.h"

namespace qtrain {

void save_bnb4_model(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                     const std::set<std::string>& quantize, quant::Code4 code, const std::string& config_json) {
  namespace fs = std::filesystem;
  std::ifstream cf(config_json);
  if (!cf) throw Error(config_json + ": cannot read the base's config.json (--requantize needs an HF model directory)");
  nlohmann::json cfg = nlohmann::json::parse(cf, nullptr, false);
  if (cfg.is_discarded()) throw Error(config_json + ": not valid JSON");

  const std::string type = quant::code4_name(code);
  const auto& code_values = quant::code4_values(code);
  const auto& map = quant::dynamic_map_signed();
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : tensors) {
    if (!quantize.count(name)) {
      out.push_back({name, t.to(Device::CPU, DType::BF16)});
      continue;
    }
    QT_CHECK(t.ndim() == 2 && t.dtype() == DType::F32 && !t.is_cuda(), name + ": expected a host F32 matrix");
    quant::Packed4 p = quant::quantize_4bit(t.f32(), t.numel(), code, true);
    out.push_back({name, Tensor::from_elements(p.packed, {int64_t(p.packed.size()), 1}, DType::U8)});
    out.push_back({name + ".absmax", Tensor::from_elements(p.qabsmax, {int64_t(p.qabsmax.size())}, DType::U8)});
    out.push_back({name + ".nested_absmax", Tensor::from_elements(p.absmax2, {int64_t(p.absmax2.size())}, DType::F32)});
    out.push_back({name + ".nested_quant_map",
                   Tensor::from_elements(std::vector<float>(map.begin(), map.end()), {256}, DType::F32)});
    out.push_back({name + ".quant_map",
                   Tensor::from_elements(std::vector<float>(code_values.begin(), code_values.end()), {16}, DType::F32)});
    nlohmann::ordered_json qs = {{"quant_type", type},       {"blocksize", p.blocksize},
                                 {"dtype", "bfloat16"},      {"shape", {t.size(0), t.size(1)}},
                                 {"nested_blocksize", 256},  {"nested_dtype", "float32"},
                                 {"nested_offset", double(p.offset)}};
    const std::string js = qs.dump();
    out.push_back({name + ".quant_state.bitsandbytes__" + type,
                   Tensor::from_elements(std::vector<uint8_t>(js.begin(), js.end()), {int64_t(js.size())}, DType::U8)});
  }
  cfg["quantization_config"] = {{"quant_method", "bitsandbytes"},
                                {"load_in_4bit", true},
                                {"load_in_8bit", false},
                                {"bnb_4bit_quant_type", type},
                                {"bnb_4bit_use_double_quant", true},
                                {"bnb_4bit_compute_dtype", "bfloat16"},
                                {"bnb_4bit_quant_storage", "uint8"},
                                {"llm_int8_threshold", 6.0},
                                {"llm_int8_has_fp16_weight", false},
                                {"llm_int8_skip_modules", nullptr},
                                {"llm_int8_enable_fp32_cpu_offload", false}};
  cfg["torch_dtype"] = "bfloat16";
  fs::create_directories(dir);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}});
  std::ofstream((fs::path(dir) / "config.json").string()) << cfg.dump(2) << "\n";
}

}  // namespace qtrain
