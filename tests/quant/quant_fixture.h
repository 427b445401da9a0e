// The raw arrays bitsandbytes wrote (tests/fixtures/quant/make_quant_fixtures.py):
// w.bin is a [32, 128] F32 weight; <code>[_dq]_{packed,absmax,qabsmax,absmax2,offset,deq}.bin
// its quantized forms and dequantized values.
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace qtrain::testing {

template <class T>
std::vector<T> load_quant_fixture(const std::string& name) {
  std::ifstream f(fixture("quant/" + name + ".bin"), std::ios::binary | std::ios::ate);
  EXPECT_TRUE(f.good()) << name;
  std::vector<T> v(size_t(f.tellg()) / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
  return v;
}

}  // namespace qtrain::testing
