// Helpers shared by the GoogleTest suites.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/device.h"
#include "kernels/tensor.h"

namespace qtrain::testing {

// The source tree the fixtures are read from: $QTRAIN_SOURCE_DIR when set (a
// test binary run from a copy of the tree, or on another machine), else the
// tree it was built from.
inline std::string source_dir() {
  const char* env = std::getenv("QTRAIN_SOURCE_DIR");
  return env && *env ? std::string(env) : std::string(QTRAIN_SOURCE_DIR);
}
inline std::string fixture(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }
// A fixture file's bytes; a missing one throws naming the path looked for
// (instead of a JSON parse error at line 1, column 1).
inline std::string fixture_text(const std::string& rel) {
  const std::string path = fixture(rel);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("fixture not found: " + path +
                             " (fixtures are read from the source tree; set QTRAIN_SOURCE_DIR to point at it)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline nlohmann::json fixture_json(const std::string& rel) {
  try {
    return nlohmann::json::parse(fixture_text(rel));
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(fixture(rel) + ": invalid JSON (" + e.what() + ")");
  }
}
// ../shared beside the repo (test data, read-only).
inline std::string shared_dir() { return source_dir() + "/../shared"; }

// A fresh directory for the running test, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           ("qtrain_test_" + std::to_string(getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline Tensor randn(const Shape& shape, uint64_t seed, float scale = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = nd(rng);
  return t;
}

// max |a-b| / max(|b|, floor) over elements
inline double max_rel_err(const std::vector<float>& a, const std::vector<float>& b, double floor = 1e-6) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(std::abs(double(b[i])), floor));
  return worst;
}

// ||a-b|| / ||b||
inline double norm_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// A parameterized test's name from a (model, method) tuple: "tiny_llama_lora".
struct ModelMethodName {
  template <class Info>
  std::string operator()(const Info& info) const {
    std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
    for (char& c : n) c = c == '-' ? '_' : c;
    return n;
  }
};

#define QT_SKIP_WITHOUT_GPU()                                        \
  do {                                                               \
    if (!::qtrain::cuda_available()) GTEST_SKIP() << "skipped: no GPU"; \
  } while (0)

}  // namespace qtrain::testing
