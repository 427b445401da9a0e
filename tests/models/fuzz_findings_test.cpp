// Inputs the fuzz targets (tests/fuzz/) found crashing a parser, or
// escaping it with something other than a BadInput qtrain::Error. Each must
// now be rejected with one line naming the file and the field. (The crashing
// inputs themselves are replayed by the fuzz.* CTest tests.)
#include <string>

#include "models/model_config.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "tests/test_util.h"

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

}  // namespace
