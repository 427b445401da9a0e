// Fixtures are found from the source tree, whatever the working directory; a
// missing one fails with the path looked for, never with a JSON parse error at
// line 1, column 1 (what the CUDA tests said when run from a copied tree).
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <functional>
#include <string>

#include "models/gguf_file.h"
#include "models/peft_io.h"
#include "models/safetensors.h"
#include "models/weight_source.h"
#include "tests/generate_fixture.h"
#include "tests/hf_fixture.h"
#include "tests/test_util.h"

using namespace qtrain;
using namespace qtrain::testing;

namespace {

// Points fixture() at a tree that does not exist for the scope's duration.
struct MissingSourceTree {
  static constexpr const char* kRoot = "/nonexistent-qtrain-tree";
  MissingSourceTree() { ::setenv("QTRAIN_SOURCE_DIR", kRoot, 1); }
  ~MissingSourceTree() { ::unsetenv("QTRAIN_SOURCE_DIR"); }
};

// fn must throw, naming `path`, and must not be a JSON parse error.
void expect_names_path(const std::function<void()>& fn, const std::string& path) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << path;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << "'" << path << "' not in: " << what;
    EXPECT_EQ(what.find("parse error"), std::string::npos) << what;
  }
}

TEST(FixtureLookup, EveryLoaderNamesTheMissingPath) {
  MissingSourceTree guard;
  const std::string fx = std::string(MissingSourceTree::kRoot) + "/tests/fixtures/";
  expect_names_path([] { fixture_text("tiny-llama-eval.jsonl"); }, fx + "tiny-llama-eval.jsonl");
  expect_names_path([] { load_ref("tiny-llama"); }, fx + "tiny-llama-ref.json");
  expect_names_path([] { load_greedy_cases(); }, fx + "generate-ref.json");
  expect_names_path([] { load_hf_model_dir(fixture("tiny-llama")); }, fx + "tiny-llama");
  expect_names_path([] { read_peft_adapter(fixture("tiny-llama-lora")); }, fx + "tiny-llama-lora");
  expect_names_path([] { SafetensorsFile f(fixture("tiny-llama-lora-grads.safetensors")); },
                    fx + "tiny-llama-lora-grads.safetensors");
  expect_names_path([] { GgufFile f(fixture("gguf/blocks.gguf")); }, fx + "gguf/blocks.gguf");
}

// Run from another directory (as a copied or installed test binary is), the fixtures still load.
TEST(FixtureLookup, LoadsFromAnotherWorkingDirectory) {
  struct InRoot {  // the working directory comes back even if a loader throws
    char cwd[PATH_MAX] = {};
    InRoot() { EXPECT_TRUE(::getcwd(cwd, sizeof cwd) && ::chdir("/") == 0); }
    ~InRoot() { EXPECT_EQ(::chdir(cwd), 0); }
  } in_root;
  Ref r;
  EXPECT_NO_THROW(r = load_ref("tiny-llama"));
  EXPECT_GT(r.B, 0);
  EXPECT_NO_THROW(load_hf_model_dir(fixture("tiny-llama")));
  EXPECT_FALSE(load_greedy_cases().empty());
}

}  // namespace
