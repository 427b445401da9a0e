// Reads the PyTorch reference values made by tests/fixtures/make_kernel_fixtures.py
// (tests/fixtures/kernels/<op>.json: {"tensors": {name: {shape, data}}, "scalars": {...}}).
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace qtrain::testing {

class KernelFixture {
 public:
  explicit KernelFixture(const std::string& op) : path_(fixture("kernels/" + op + ".json")) {
    doc_ = fixture_json("kernels/" + op + ".json");
  }

  std::vector<float> vec(const std::string& name) const {
    const auto& t = entry(name);
    std::vector<float> v;
    for (const auto& x : t.at("data")) v.push_back(float(x.get<double>()));
    return v;
  }
  Shape shape(const std::string& name) const { return entry(name).at("shape").get<Shape>(); }
  Tensor tensor(const std::string& name) const { return Tensor::from_vector(vec(name), shape(name)); }
  // Integer data stored as floats (targets, ids) -> I32 tensor.
  Tensor ints(const std::string& name) const {
    auto v = vec(name);
    Tensor t = Tensor::empty(shape(name), DType::I32);
    for (size_t i = 0; i < v.size(); ++i) t.i32()[i] = int32_t(v[i]);
    return t;
  }
  double scalar(const std::string& name) const { return doc_.at("scalars").at(name).get<double>(); }
  const nlohmann::json& doc() const { return doc_; }

 private:
  const nlohmann::json& entry(const std::string& name) const {
    const auto& ts = doc_.at("tensors");
    if (!ts.contains(name)) throw Error(path_ + ": no tensor '" + name + "'");
    return ts.at(name);
  }
  std::string path_;
  nlohmann::json doc_;
};

}  // namespace qtrain::testing

namespace qtrain::testing {
// Agreement with PyTorch: norm-relative error within 1e-4.
constexpr double kRefTol = 1e-4;
#define EXPECT_MATCHES_REF(actual, expected, what)                                              \
  EXPECT_LT(::qtrain::testing::norm_rel_err((actual), (expected)), ::qtrain::testing::kRefTol) \
      << (what) << " vs PyTorch"
}  // namespace qtrain::testing
