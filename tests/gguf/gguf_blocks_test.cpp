// Every ggml block type dequantized by qtrain vs the PyPI gguf package's numpy
// reference (tests/fixtures/gguf/blocks.gguf, made by make_gguf_fixtures.py):
// bit-exact, compared as raw float bits.
#include <cmath>
#include <cstring>

#include "kernels/quant/gguf_blocks.h"
#include "models/gguf_file.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

class GgufBlocks : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufBlocks, BitExactWithGgufPackage) {
  GgufFile f(testing::fixture("gguf/blocks.gguf"));
  const std::string name = GetParam();
  const GgufTensorInfo* q = f.find_tensor(name);
  const GgufTensorInfo* ref = f.find_tensor(name + ".expected");
  ASSERT_TRUE(q && ref) << name;
  EXPECT_STREQ(ggml_type_name(q->type), name.c_str());
  ASSERT_EQ(ref->type, GgmlType::F32);
  ASSERT_EQ(q->ne, ref->ne);
  const int64_t cols = q->ne[0], rows = q->numel() / cols;
  std::vector<float> got(size_t(q->numel()));
  const size_t row_bytes = ggml_row_size(q->type, cols);
  for (int64_t r = 0; r < rows; ++r)  // row by row, as the quantized Linear will call it
    dequantize_row(q->type, f.tensor_data(*q) + r * row_bytes, got.data() + r * cols, cols);
  std::vector<float> want(got.size());
  std::memcpy(want.data(), f.tensor_data(*ref), want.size() * 4);
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    if (a != b && mismatches++ < 5) ADD_FAILURE() << name << "[" << i << "] got " << got[i] << " want " << want[i];
  }
  EXPECT_EQ(mismatches, 0);
  // The fixture is not degenerate: values vary.
  EXPECT_NE(want.front(), want.back());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgufBlocks,
                         ::testing::Values("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                                           "Q3_K", "Q4_K", "Q5_K", "Q6_K"));

TEST(GgufBlocksInfo, SizesMatchGgml) {
  EXPECT_EQ(ggml_row_size(GgmlType::Q4_1, 576), 18u * 20u);
  EXPECT_EQ(ggml_row_size(GgmlType::Q6_K, 512), 2u * 210u);
  EXPECT_EQ(ggml_type_info(4u), nullptr);   // removed Q4_2
  EXPECT_EQ(ggml_type_info(999u), nullptr);
  EXPECT_STREQ(ggml_type_info(30u)->name, "BF16");
}

// The table is the one source: the lists and flags the loader, the writer,
// the export and the GPU path use are read from it.
TEST(GgufBlocksInfo, ListsComeFromTheTable) {
  EXPECT_EQ(ggml_type_names([](const GgmlTypeInfo& i) { return i.dequantizable; }, " "),
            "F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K BF16");
  EXPECT_EQ(ggml_type_names([](const GgmlTypeInfo& i) { return i.from_float != nullptr; }), "F32, F16, Q4_0, Q8_0, BF16");
  EXPECT_EQ(ggml_type_names([](const GgmlTypeInfo& i) { return i.on_gpu; }), "F16, Q4_0, Q4_1, Q8_0");
  for (uint32_t id = 0; id < 64; ++id) {
    const GgmlTypeInfo* t = ggml_type_info(id);
    if (!t) continue;
    SCOPED_TRACE(t->name);
    EXPECT_EQ(t->dequantizable, t->to_float != nullptr);
    EXPECT_TRUE(!t->on_gpu || t->dequantizable);  // the GPU kernels are tested against to_float
    EXPECT_TRUE(t->file_type < 0 || t->from_float);
  }
  EXPECT_EQ(ggml_type_info(GgmlType::Q8_0).file_type, 7);
  EXPECT_EQ(ggml_type_info(GgmlType::BF16).file_type, 32);
}

// Every type with an encoder decodes its own output to within its step, and
// re-encoding the decoded values gives the same bytes.
TEST(GgufBlocksInfo, EncodersRoundTrip) {
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.37f) * 2.f;
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    SCOPED_TRACE(ggml_type_name(type));
    const int64_t n = int64_t(x.size());
    std::vector<uint8_t> bytes(ggml_row_size(type, n)), again(bytes.size());
    std::vector<float> y(x.size());
    quantize_row(type, x.data(), bytes.data(), n);
    dequantize_row(type, bytes.data(), y.data(), n);
    const float tol = type == GgmlType::Q4_0 ? 0.3f : type == GgmlType::Q8_0 ? 0.02f : 0.01f;
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], tol) << i;
    quantize_row(type, y.data(), again.data(), n);
    EXPECT_EQ(again, bytes);
  }
}

}  // namespace
}  // namespace qtrain
