// Inputs the fuzz targets (tests/fuzz/) found crashing a parser, or
// escaping it with something other than a BadInput qtrain::Error. Each must
// now be rejected with one line naming the file and the field. (The crashing
// inputs themselves are replayed by the fuzz.* CTest tests.)
#include <cstdint>
#include <cstring>
#include <string>

#include "models/model_config.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/test_util.h"
#include "trainer/checkpoint.h"

using namespace qtrain;

namespace {

// The message of the BadInput Error that fn throws ("" and a failure otherwise).
template <class Fn>
std::string bad_input_message(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a qtrain::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted";
  return "";
}

std::string llama_config(const std::string& extra) {
  return R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 4, "hidden_size": 64, "intermediate_size": 96)" +
         extra + "}";
}

TEST(FuzzFindings, ConfigZeroKeyValueHeadsIsAnError) {  // was a division by zero
  auto msg = bad_input_message(
      [] { ModelConfig::from_hf_json_text(llama_config(R"(, "num_key_value_heads": 0)"), "m/config.json"); });
  EXPECT_NE(msg.find("m/config.json: field 'num_key_value_heads'"), std::string::npos) << msg;
}

TEST(FuzzFindings, ConfigHugeOrMistypedFieldsAreErrors) {  // were truncated to int, or escaped as json exceptions
  for (auto [extra, field] : {std::pair{R"(, "head_dim": 4294967312)", "head_dim"},
                              {R"(, "rms_norm_eps": 1e600)", "invalid JSON"},
                              {R"(, "rms_norm_eps": -1)", "rms_norm_eps"},
                              {R"(, "model_type": 3)", "model_type"},
                              {R"(, "tie_word_embeddings": "yes")", "tie_word_embeddings"}}) {
    auto msg = bad_input_message([&] { ModelConfig::from_hf_json_text(llama_config(extra), "m/config.json"); });
    EXPECT_NE(msg.find("m/config.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }
  auto msg = bad_input_message(
      [] { ModelConfig::from_hf_json_text(R"({"architectures": [7], "model_type": "llama"})", "m/config.json"); });
  EXPECT_NE(msg.find("field 'architectures'"), std::string::npos) << msg;
}

TEST(FuzzFindings, SafetensorsHeaderNumberOverflowIsAnError) {  // escaped as a json out_of_range
  std::string header = R"({"w": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}})";
  std::string file(8, '\0');
  uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header + std::string(4, '\0');
  auto msg = bad_input_message([&] { SafetensorsFile f("w.safetensors", file.data(), file.size()); });
  EXPECT_NE(msg.find("w.safetensors: header is not valid JSON"), std::string::npos) << msg;
}

TEST(FuzzFindings, SafetensorsShapeOverflowIsAnError) {  // the element count overflowed int64
  std::string header =
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 0]}})";
  std::string file(8, '\0');
  uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header;
  auto msg = bad_input_message([&] { SafetensorsFile f("w.safetensors", file.data(), file.size()); });
  EXPECT_NE(msg.find("w.safetensors: tensor 'w'"), std::string::npos) << msg;
}

TEST(FuzzFindings, CheckpointStepMustBeAWholeNumberInRange) {  // 1.3e43 converted to int64 (undefined)
  for (const char* step : {"1.3e43", "2.5", "-3", "18446744073709551615"}) {
    std::string text = std::string(R"({"step": )") + step +
                       R"(, "optimizer_steps": 1, "rng": {}, "data_position": {}, "config": {}})";
    CheckpointState s;
    auto msg = bad_input_message([&] { parse_checkpoint_state(text, "ck/state.json", s); });
    EXPECT_NE(msg.find("ck/state.json: field 'step'"), std::string::npos) << msg;
  }
}

}  // namespace
