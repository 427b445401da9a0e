// The raw arrays bitsandbytes wrote (tests/fixtures/quant/make_quant_fixtures.py):
// w.bin is a [32, 128] F32 weight; <code>[_dq]_{packed,absmax,qabsmax,absmax2,offset,deq}.bin
// its quantized forms and dequantized values.
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_util.h"

namespace qtrain::testing {

template <class T>
std::vector<T> load_quant_fixture(const std::string& name) {
  const std::string bytes = fixture_text("quant/" + name + ".bin");
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

}  // namespace qtrain::testing
