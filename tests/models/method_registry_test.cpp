// Adding a method is one file: a method registered from this test file (an
// output-scaling adapter, y = s * (x W^T + b) with a learned s per output
// feature) builds, runs forward and backward through the base path's hooks,
// and its gradient matches finite differences. The built-in methods come
// from the same registry.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "models/adapters/adapter_type.h"
#include "models/method.h"
#include "tests/hf_fixture.h"

namespace qtrain::testing {
namespace {

// CPU-only test adapter: scales the base output (bias included) per feature.
class OutputScale : public Adapter {
 public:
  explicit OutputScale(int64_t out) : out_(out) {}
  void declare(ParamSet& ps, const std::string& module, int layer) override {
    i_ = ps.declare(module + ".test_scale", {out_}, false, layer);
  }
  void bind_and_init(ParamSet& ps, uint64_t, const BaseWeight&) override {
    s_ = &ps[i_];
    std::vector<float> ones(size_t(out_), 1.f);
    s_->value.copy_from(Tensor::wrap(ones.data(), {out_}, DType::F32));
  }
  void forward(Tensor y, Tensor, const BaseWeight&, bool, uint64_t) override {
    y0_ = y.clone();  // base(x) + b, for the scale's gradient
    const float* s = s_->value.f32();
    for (int64_t i = 0; i < y.numel(); ++i) y.f32()[i] *= s[i % out_];
  }
  Tensor base_grad(Tensor dy) override {
    Tensor d = dy.clone();
    const float* s = s_->value.f32();
    for (int64_t i = 0; i < d.numel(); ++i) d.f32()[i] *= s[i % out_];
    return d;
  }
  void backward(Tensor, Tensor dy, Tensor, const BaseWeight&) override {
    float* g = s_->grad.f32();
    for (int64_t i = 0; i < dy.numel(); ++i) g[i % out_] += dy.f32()[i] * y0_.f32()[i];
    ++backward_calls;
  }
  std::vector<std::pair<std::string, Tensor>> tensors() const override { return {{"test_scale", s_->value}}; }
  Tensor delta_f32(const BaseWeight&) const override { throw Error("test adapter: no merge"); }
  void write_peft_config(nlohmann::json& cfg, const std::string&) const override { cfg["peft_type"] = "TEST_SCALE"; }
  static inline int backward_calls = 0;

 private:
  int64_t out_;
  size_t i_ = 0;
  Param* s_ = nullptr;
  Tensor y0_;
};

QT_REGISTER_ADAPTER(test_output_scale, {.name = "test-output-scale",
                                        .help = "test only: a learned per-feature output scale",
                                        .make = [](const AdapterRequest& r) -> std::unique_ptr<Adapter> {
                                          return std::make_unique<OutputScale>(r.out);
                                        }});
QT_REGISTER_METHOD(test_output_scale, {.name = "test-output-scale",
                                       .help = "test only: the test adapter on the dense base",
                                       .adapter = "test-output-scale"});

TEST(MethodRegistry, ListsTheBuiltInsAndTheTestMethod) {
  auto names = method_names();
  for (const char* m : {"full", "lora", "qlora", "nf4-lora", "qlora-fp4", "int8-lora", "ia3", "dora", "test-output-scale"})
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
  EXPECT_TRUE(find_method("full").trains_base);
  EXPECT_TRUE(find_method("qlora").quantizes_base());
  EXPECT_FALSE(find_method("lora").quantizes_base());
  try {
    find_method("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test-output-scale"), std::string::npos) << e.what();
  }
}

TEST(MethodRegistry, AnOutputScaleAdapterTrainsThroughTheBaseHooks) {
  for (const char* name : {"tiny-gpt2", "tiny-llama"}) {
    Ref r = load_ref(name);
    LoadedModel lm = load_hf_model_dir(fixture(name));
    ModelOptions opt;
    opt.method = "test-output-scale";
    auto m = Model::create(lm.config, *lm.weights, opt);
    auto base = Model::create(lm.config, *lm.weights, ModelOptions{.targets = {}});
    // Starting at s = 1 it is the base model.
    EXPECT_DOUBLE_EQ(ref_mean_loss(*m, r, false), ref_mean_loss(*base, r, false)) << name;
    // Random scales, then the analytic gradient of a few entries vs central differences.
    uint64_t seed = 3;
    for (auto& p : m->params().params()) {
      Tensor v = randn(p.shape, seed++, 0.2f);
      for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] += 1.f;
      p.value.copy_from(v);
    }
    OutputScale::backward_calls = 0;
    ref_mean_loss(*m, r, true);
    EXPECT_EQ(OutputScale::backward_calls, int(m->params().params().size())) << name;
    std::vector<std::vector<float>> grads;  // the finite differences below zero the gradients
    for (auto& p : m->params().params()) grads.push_back(p.grad.to_vector());
    for (size_t pi : {size_t(0), m->params().params().size() - 1}) {
      Param& p = m->params().params()[pi];
      for (int64_t i : {int64_t(0), p.shape[0] / 2}) {
        const float g = grads[pi][size_t(i)], v0 = p.value.f32()[i], eps = 1e-2f;
        p.value.f32()[i] = v0 + eps;
        const double up = ref_mean_loss(*m, r, false);
        p.value.f32()[i] = v0 - eps;
        const double down = ref_mean_loss(*m, r, false);
        p.value.f32()[i] = v0;
        const double fd = (up - down) / (2 * eps);
        EXPECT_NEAR(g, fd, 2e-3 * std::max(1.0, std::abs(fd)) + 1e-5) << name << " " << p.name << "[" << i << "]";
      }
    }
  }
}

}  // namespace
}  // namespace qtrain::testing
