// Damaged inputs (tests/fixtures/bad, made by make_bad_fixtures.py) are qtrain::Error
// of kind BadInput whose message names the file and the field or tensor: never a
// crash, never a silent load.
#include <string>

#include "models/model.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

// Runs fn, expects a BadInput Error whose message holds every one of `words`.
template <class Fn>
void expect_bad_input(Fn fn, std::initializer_list<std::string> words) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    for (auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "'" << w << "' not in: " << e.what();
  }
}

TEST(BadFixtures, MicroLlamaIsValid) {
  SafetensorsFile f(fixture("bad/micro-llama/model.safetensors"));
  EXPECT_NO_THROW(load_hf_model_dir(fixture("bad/micro-llama")));
}

TEST(BadFixtures, DamagedSafetensors) {
  expect_bad_input([] { SafetensorsFile f(fixture("bad/truncated.safetensors")); }, {"truncated.safetensors"});
  expect_bad_input([] { SafetensorsFile f(fixture("bad/header-truncated.safetensors")); },
                   {"header-truncated.safetensors"});
  expect_bad_input([] { SafetensorsFile f(fixture("bad/offsets-out-of-range.safetensors")); },
                   {"offsets-out-of-range.safetensors", "model.norm.weight"});
  expect_bad_input([] { SafetensorsFile f(fixture("bad/unknown-dtype.safetensors")); },
                   {"unknown-dtype.safetensors", "Q9"});
}

TEST(BadFixtures, DamagedModelDirectories) {
  for (std::string c : {"truncated", "header-truncated", "offsets-out-of-range", "unknown-dtype"})
    expect_bad_input([&] { load_hf_model_dir(fixture("bad/" + c)); }, {"bad/" + c, "model.safetensors"});
  expect_bad_input([] { load_hf_model_dir(fixture("bad/config-missing-field")); }, {"config.json", "hidden_size"});
  expect_bad_input([] { load_hf_model_dir(fixture("bad/no-such-model")); }, {"no-such-model"});
}

// An adapter built for the model the way `eval --adapter` does it, then loaded.
void load_adapter(const std::string& dir) {
  LoadedModel m = load_hf_model_dir(fixture("tiny-llama"));
  PeftAdapter a = read_peft_adapter(fixture(dir));
  ModelOptions opt;
  opt.lora = a.lora;
  opt.targets = a.modules;
  auto model = Model::create(m.config, *m.weights, opt);
  apply_peft_adapter(*model, a);
}

TEST(BadFixtures, AdaptersThatDoNotFit) {
  EXPECT_NO_THROW(load_adapter("tiny-llama-lora-qv"));
  expect_bad_input([] { load_adapter("bad/adapter-wrong-shape"); }, {"adapter", "q_proj"});
  expect_bad_input([] { load_adapter("bad/adapter-r-mismatch"); }, {"adapter"});
  expect_bad_input([] { load_adapter("bad/no-such-adapter"); }, {"no-such-adapter"});
}

}  // namespace
