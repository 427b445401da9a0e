// The GGUF reader: metadata of every value type, and every kind of bad input
// rejected with a clear qtrain::Error (BadInput) naming the file and the field.
#include <cstring>

#include "models/gguf_file.h"
#include "models/gguf_writer.h"
#include "tests/test_util.h"

namespace qtrain {
namespace {

GgufValue arr_of_u16(std::vector<int> xs) {
  std::vector<GgufValue> es;
  for (int x : xs) es.push_back(GgufValue::of_int(GgufValueType::U16, x));
  return GgufValue::of_array(GgufValueType::U16, std::move(es));
}

// A small valid file: one of each metadata type and two tensors.
std::vector<uint8_t> small_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("u32", 7);
  w.set_i32("i32", -5);
  w.set_f32("f32", 0.25f);
  w.set_bool("yes", true);
  w.set_string_array("words", {"a", "bc", ""});
  w.set("nested", GgufValue::of_array(GgufValueType::ARRAY, {arr_of_u16({1, 2}), arr_of_u16({3})}));
  w.set("f64", GgufValue::of_float(GgufValueType::F64, -1.5));
  w.set("i64", GgufValue::of_int(GgufValueType::I64, -(int64_t(1) << 40)));
  w.add_tensor("a", Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}));
  w.add_tensor("b", testing::randn({1, 64}, 3), GgmlType::Q8_0);
  return w.serialize();
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile f("bad.gguf", bytes.data(), bytes.size());
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    return e.what();
  }
  return "";
}

// Last occurrence: tensor infos follow the metadata, which may hold the same bytes.
size_t find_bytes(const std::vector<uint8_t>& hay, const std::string& needle) {
  auto it = std::find_end(hay.begin(), hay.end(), needle.begin(), needle.end());
  EXPECT_NE(it, hay.end()) << needle;
  return size_t(it - hay.begin());
}

TEST(GgufFile, ReadsAllValueTypesAndTensors) {
  auto bytes = small_file();
  GgufFile f("small.gguf", bytes.data(), bytes.size());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("u32"), 7);
  EXPECT_EQ(f.get_int("i32"), -5);
  EXPECT_EQ(f.get_int("i64"), -(int64_t(1) << 40));
  EXPECT_EQ(f.get_float("f32"), 0.25);
  EXPECT_EQ(f.get_float("f64"), -1.5);
  EXPECT_TRUE(f.find("yes")->b);
  EXPECT_EQ(f.get_string_array("words"), (std::vector<std::string>{"a", "bc", ""}));
  const GgufValue* n = f.find("nested");
  ASSERT_TRUE(n);
  ASSERT_EQ(n->arr.size(), 2u);
  EXPECT_EQ(n->arr[0].arr[1].u, 2u);
  EXPECT_EQ(n->arr[1].arr[0].u, 3u);
  EXPECT_EQ(f.get_int("missing", 9), 9);
  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo* a = f.find_tensor("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ne, (std::vector<int64_t>{3, 2}));  // ggml order
  EXPECT_EQ(f.data_offset() % 32, 0u);
  float v[6];
  std::memcpy(v, f.tensor_data(*a), 24);
  EXPECT_EQ(v[5], 6.f);
  EXPECT_EQ(f.find_tensor("b")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("b")->nbytes, 2u * 34u);
}

TEST(GgufFile, WrongTypeGetterNamesKey) {
  auto bytes = small_file();
  GgufFile f("small.gguf", bytes.data(), bytes.size());
  try {
    f.get_int("words");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'words' is array of string, expected an integer"), std::string::npos)
        << e.what();
  }
}

TEST(GgufFile, BadMagic) {
  auto b = small_file();
  b[0] = 'X';
  EXPECT_NE(error_of(b).find("bad.gguf: bad magic"), std::string::npos);
  EXPECT_NE(error_of({}).find("bad magic"), std::string::npos);
}

TEST(GgufFile, UnsupportedVersion) {
  auto b = small_file();
  b[4] = 1;
  EXPECT_NE(error_of(b).find("version 1"), std::string::npos);
  b[4] = 0;
  b[7] = 3;  // 0x03000000: byte-swapped
  EXPECT_NE(error_of(b).find("big-endian"), std::string::npos);
}

TEST(GgufFile, TruncatedAnywhere) {
  auto full = small_file();
  GgufFile ok("small.gguf", full.data(), full.size());
  const GgufTensorInfo& last = *ok.find_tensor("b");
  const size_t end = ok.data_offset() + last.offset + last.nbytes;  // padding follows
  // Every cut before the end of the last tensor fails cleanly.
  for (size_t cut = 0; cut < end; cut += 5) {
    std::vector<uint8_t> b(full.begin(), full.begin() + long(cut));
    EXPECT_NE(error_of(b), "") << "cut at " << cut;
  }
  // A cut in the data section names the tensor that runs past the end.
  std::vector<uint8_t> b(full.begin(), full.begin() + long(end - 1));
  std::string msg = error_of(b);
  EXPECT_NE(msg.find("tensor 'b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("runs past the end of the file"), std::string::npos) << msg;
}

TEST(GgufFile, TensorPastTheEnd) {
  auto b = small_file();
  // tensor "a": name, n_dims (4) = 2, ne 3 (8), ne 2 (8), type (4), offset (8)
  size_t at = find_bytes(b, std::string("\x01\0\0\0\0\0\0\0a\x02\0\0\0", 13)) + 9 + 4 + 16 + 4;
  uint64_t off = 1 << 20;
  std::memcpy(&b[at], &off, 8);
  std::string msg = error_of(b);
  EXPECT_NE(msg.find("tensor 'a'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("runs past the end"), std::string::npos) << msg;
}

TEST(GgufFile, UnknownTensorType) {
  auto b = small_file();
  size_t at = find_bytes(b, std::string("\x01\0\0\0\0\0\0\0b\x02\0\0\0", 13)) + 9 + 4 + 16;
  uint32_t type = 77;
  std::memcpy(&b[at], &type, 4);
  std::string msg = error_of(b);
  EXPECT_NE(msg.find("tensor 'b': unknown ggml type 77"), std::string::npos) << msg;
}

TEST(GgufFile, UnknownValueType) {
  auto b = small_file();
  size_t at = find_bytes(b, "u32") + 3;
  uint32_t type = 13;
  std::memcpy(&b[at], &type, 4);
  std::string msg = error_of(b);
  EXPECT_NE(msg.find("metadata 'u32': unknown value type 13"), std::string::npos) << msg;
}

TEST(GgufFile, StringLengthPastTheEnd) {
  auto b = small_file();
  size_t at = find_bytes(b, "llama") - 8;  // the value's u64 length
  uint64_t len = uint64_t(1) << 40;
  std::memcpy(&b[at], &len, 8);
  std::string msg = error_of(b);
  EXPECT_NE(msg.find("metadata 'general.architecture': string length 1099511627776"), std::string::npos) << msg;
  EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;
}

TEST(GgufFile, HugeArrayCountIsRejectedBeforeAllocating) {
  auto b = small_file();
  size_t at = find_bytes(b, "words") + 5 + 4 + 4;  // key, value type ARRAY, elem type STRING, then count
  uint64_t n = uint64_t(1) << 60;
  std::memcpy(&b[at], &n, 8);
  EXPECT_NE(error_of(b).find("metadata 'words': array of"), std::string::npos);
}

TEST(GgufFile, MissingFileIsBadInput) {
  try {
    GgufFile f("/nonexistent/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.gguf: cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace qtrain
