// ModelConfig from an HF config.json.
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "models/json_fields.h"
#include "models/model_config.h"

namespace qtrain {

namespace {

using nlohmann::json;

using json_fields::opt_bool;
using json_fields::opt_string;

const json& need(const json& j, const std::string& key, const std::string& path) {
  if (!json_fields::present(j, key)) throw Error(path + ": missing field '" + key + "'");
  return j[key];
}

int need_int(const json& j, const std::string& key, const std::string& path) {
  return int(json_fields::int_in(need(j, key, path), key, 1, INT32_MAX, path, "a positive integer"));
}

// min: the smallest value accepted.
int opt_int(const json& j, const std::string& key, int dflt, const std::string& path, int64_t min = INT32_MIN) {
  return json_fields::present(j, key) ? int(json_fields::int_in(j[key], key, min, INT32_MAX, path)) : dflt;
}

// Epsilons and RoPE theta: finite and > 0.
float opt_float(const json& j, const std::string& key, float dflt, const std::string& path) {
  return json_fields::opt_float(j, key, dflt, FLT_MIN, FLT_MAX, path);
}

// A token id (or the first of a list of them); -1 when absent or negative.
int first_id(const json& j, const std::string& key, const std::string& path) {
  if (!json_fields::present(j, key)) return -1;
  const json& v = j[key].is_array() && !j[key].empty() ? j[key][0] : j[key];
  if (!v.is_number_integer()) return -1;
  return std::max(int(json_fields::int_in(v, key, INT32_MIN, INT32_MAX, path)), -1);
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open model config");
  return from_hf_json_text(std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()), path);
}

ModelConfig ModelConfig::from_hf_json_text(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": not a JSON object");
  // Pre-quantized checkpoints hold packed weights (uint8 codes, qweight/qzeros)
  // that no loader here reads; say so before a shape error on the first one.
  if (j.contains("quantization_config") && j["quantization_config"].is_object()) {
    const json& q = j["quantization_config"];
    const std::string qm =
        q.contains("quant_method") && q["quant_method"].is_string() ? q["quant_method"].get<std::string>() : "";
    if (qm == "bitsandbytes" || qm == "gptq" || qm == "awq")
      throw Error(path + ": field 'quantization_config' says a " + qm +
                  "-quantized checkpoint; qtrain loads float weights (F32/BF16/F16) and quantizes them itself "
                  "(--method qlora): give the float model (from qtrain export: --merge without --requantize)");
  }
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    if (!j["architectures"][0].is_string())
      throw Error(path + ": field 'architectures' must be a list of names, got " + j["architectures"].dump());
    arch = j["architectures"][0].get<std::string>();
  }
  std::string model_type = opt_string(j, "model_type", "", path);
  ModelConfig c;
  c.source = path;
  if (arch == "GPT2LMHeadModel" || (arch.empty() && model_type == "gpt2")) {
    c.arch = Arch::GPT2;
    c.vocab_size = need_int(j, "vocab_size", path);
    c.n_layer = need_int(j, "n_layer", path);
    c.n_head = need_int(j, "n_head", path);
    c.n_kv_head = c.n_head;
    c.d_model = need_int(j, "n_embd", path);
    c.d_ff = opt_int(j, "n_inner", 0, path);
    if (c.d_ff <= 0) {  // GPT-2's default: 4 * n_embd
      if (c.d_model > INT32_MAX / 4) throw Error(path + ": field 'n_embd' is too large (" + std::to_string(c.d_model) + ")");
      c.d_ff = 4 * c.d_model;
    }
    c.max_pos = need_int(j, "n_positions", path);
    c.norm_eps = opt_float(j, "layer_norm_epsilon", 1e-5f, path);
    c.tied_embeddings = true;
    c.attn_bias = c.mlp_bias = true;
    if (opt_bool(j, "scale_attn_by_inverse_layer_idx", false, path) || opt_bool(j, "reorder_and_upcast_attn", false, path))
      throw Error(path + ": scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported");
    std::string act = opt_string(j, "activation_function", "gelu_new", path);
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      throw Error(path + ": field 'activation_function' is '" + act + "'; qtrain supports gelu_new (tanh GELU)");
  } else if (arch == "LlamaForCausalLM" || (arch.empty() && model_type == "llama")) {
    c.arch = Arch::Llama;
    c.vocab_size = need_int(j, "vocab_size", path);
    c.n_layer = need_int(j, "num_hidden_layers", path);
    c.n_head = need_int(j, "num_attention_heads", path);
    c.n_kv_head = opt_int(j, "num_key_value_heads", c.n_head, path, 1);
    c.d_model = need_int(j, "hidden_size", path);
    c.d_ff = need_int(j, "intermediate_size", path);
    c.max_pos = opt_int(j, "max_position_embeddings", 2048, path, 1);
    c.norm_eps = opt_float(j, "rms_norm_eps", 1e-6f, path);
    c.rope_theta = opt_float(j, "rope_theta", 10000.f, path);
    c.tied_embeddings = opt_bool(j, "tie_word_embeddings", false, path);
    c.attn_bias = opt_bool(j, "attention_bias", false, path);
    c.mlp_bias = opt_bool(j, "mlp_bias", false, path);
    std::string act = opt_string(j, "hidden_act", "silu", path);
    if (act != "silu") throw Error(path + ": field 'hidden_act' is '" + act + "'; qtrain supports silu (SwiGLU)");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      throw Error(path + ": field 'rope_scaling' is set; RoPE scaling is not supported yet");
    // transformers >= 5 nests RoPE settings in "rope_parameters".
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const json& rp = j["rope_parameters"];
      c.rope_theta = opt_float(rp, "rope_theta", c.rope_theta, path + " (rope_parameters)");
      std::string type = opt_string(rp, "rope_type", "default", path + " (rope_parameters)");
      if (type != "default")
        throw Error(path + ": field 'rope_parameters.rope_type' is '" + type + "'; only default RoPE is supported yet");
    }
  } else {
    throw Error(path + ": field 'architectures' is '" + arch +
                "'; supported: GPT2LMHeadModel, LlamaForCausalLM");
  }
  c.head_dim = opt_int(j, "head_dim", c.d_model / c.n_head, path, 1);
  if (c.n_head % c.n_kv_head != 0)
    throw Error(path + ": num_attention_heads " + std::to_string(c.n_head) + " is not a multiple of num_key_value_heads " +
                std::to_string(c.n_kv_head));
  if (c.arch == Arch::GPT2 && c.d_model % c.n_head != 0)
    throw Error(path + ": n_embd is not a multiple of n_head");
  if (c.head_dim % 2 != 0) throw Error(path + ": head_dim must be even for RoPE");
  c.bos_id = first_id(j, "bos_token_id", path);
  c.eos_id = first_id(j, "eos_token_id", path);
  c.pad_id = first_id(j, "pad_token_id", path);
  return c;
}

void ModelConfig::write_hf_json(const std::string& path) const {
  json j;
  if (arch == Arch::GPT2) {
    j = {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"vocab_size", vocab_size},
         {"n_layer", n_layer},  {"n_head", n_head},  {"n_embd", d_model}, {"n_inner", d_ff},
         {"n_positions", max_pos}, {"n_ctx", max_pos}, {"layer_norm_epsilon", norm_eps},
         {"activation_function", "gelu_new"}, {"tie_word_embeddings", true}};
  } else {
    j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", vocab_size},
         {"num_hidden_layers", n_layer}, {"num_attention_heads", n_head}, {"num_key_value_heads", n_kv_head},
         {"hidden_size", d_model}, {"intermediate_size", d_ff}, {"head_dim", head_dim},
         {"max_position_embeddings", max_pos}, {"rms_norm_eps", norm_eps}, {"rope_theta", rope_theta},
         {"tie_word_embeddings", tied_embeddings}, {"attention_bias", attn_bias}, {"mlp_bias", mlp_bias},
         {"hidden_act", "silu"}};
  }
  for (auto [key, id] : {std::pair{"bos_token_id", bos_id}, {"eos_token_id", eos_id}, {"pad_token_id", pad_id}})
    if (id >= 0) j[key] = id;
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) throw Error(path + ": write failed", ErrorKind::Runtime);
}

}  // namespace qtrain
