// The CUDA HQQ dequantizer (kernels/cuda/hqq_dequant.cu) against its CPU
// reference (kernels/cpu/hqq_dequant.cpp): the same F32 values bit for bit,
// and their round-to-nearest-even in BF16, for 4 and 2 bits, on a shape whose
// 64-weight groups straddle rows.
#include <cstring>

#include "kernels/hqq_dequant.h"
#include "models/hqq_weight.h"
#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaHqqDequant, BitIdenticalToCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (int bits : {4, 2})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{96, 160}, {576, 1536}}) {
      SCOPED_TRACE(std::to_string(bits) + "-bit " + std::to_string(rows) + "x" + std::to_string(cols));
      Tensor w = randn({rows, cols}, 7, 0.05f);
      HqqWeight q(w, bits);
      const quant::HqqPacked& p = q.packed();
      Tensor codes = Tensor::empty({int64_t(p.codes.size())}, DType::U8);
      std::memcpy(codes.raw(), p.codes.data(), p.codes.size());
      Tensor s = Tensor::from_vector(p.scale, {int64_t(p.scale.size())});
      Tensor z = Tensor::from_vector(p.zero, {int64_t(p.zero.size())});
      Tensor cpu = Tensor::empty({rows, cols}, DType::F32);
      dequantize_hqq(cpu, codes, s, z, bits);
      Tensor dc = codes.to(Device::CUDA), ds = s.to(Device::CUDA), dz = z.to(Device::CUDA);
      Tensor f = Tensor::empty({rows, cols}, DType::F32, Device::CUDA);
      dequantize_hqq(f, dc, ds, dz, bits);
      EXPECT_EQ(vec(f), vec(cpu));
      Tensor b = Tensor::empty({rows, cols}, DType::BF16, Device::CUDA);
      dequantize_hqq(b, dc, ds, dz, bits);
      EXPECT_EQ(vec(b), vec(round_to(cpu, DType::BF16)));
      // the weight's own device path (packed bytes uploaded once) gives the same BF16
      Tensor b2 = Tensor::empty({rows, cols}, DType::BF16, Device::CUDA);
      q.dequantize_on_device(b2);
      EXPECT_EQ(vec(b2), vec(b));
    }
}

}  // namespace
}  // namespace qtrain::testing
