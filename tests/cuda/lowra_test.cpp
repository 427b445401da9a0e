// LowRA on the GPU: the mixed-precision dequantizer (kernels/cuda/lowra_dequant.cu)
// against its CPU reference bit for bit (F32, and BF16 as round-to-nearest-even
// of the same values) with 1, 2 and 4-bit rows mixed in one matrix; and a
// --method lowra model (plan, LoftQ, LoRA) on the GPU against the CPU backend.
#include <cstring>

#include "kernels/elementwise.h"
#include "kernels/lowra_dequant.h"
#include "models/lowra_weight.h"
#include "models/model.h"
#include "models/synthetic_model.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/model_step_compare.h"

namespace qtrain::testing {
namespace {

template <class T>
Tensor host(const std::vector<T>& v, DType t) {
  Tensor h = Tensor::empty({int64_t(v.size())}, t);
  std::memcpy(h.raw(), v.data(), v.size() * sizeof(T));
  return h;
}

// w as LowRA with row r at bits_of(r) bits (1, 2 or 4), each row's LUT its width's initial mapping.
template <class BitsOf>
LowraWeight mixed_lowra(const Tensor& w, BitsOf bits_of) {
  const int64_t rows = w.size(0);
  std::vector<uint8_t> bits(static_cast<size_t>(rows));
  std::vector<float> lut(size_t(rows) * quant::kLowraLut, 0.f);
  for (int64_t r = 0; r < rows; ++r) {
    bits[size_t(r)] = uint8_t(bits_of(r));
    const std::vector<float> m = quant::lowra_init_mapping(bits[size_t(r)]);
    std::copy(m.begin(), m.end(), lut.begin() + r * quant::kLowraLut);
  }
  return LowraWeight(w, bits, lut);
}

// q's packed arrays as host tensors: the arguments of dequantize_lowra / lowra_matvec.
struct PackedArgs {
  Tensor codes, off, bits, lut, absmax;
};
PackedArgs host_args(const LowraWeight& q, int64_t rows) {
  const quant::LowraPacked& p = q.packed();
  std::vector<int32_t> off(p.row_offset.begin(), p.row_offset.begin() + rows);
  return {host(p.codes, DType::U8), host(off, DType::I32), host(p.bits, DType::U8), host(p.lut, DType::F32),
          host(p.absmax, DType::F32)};
}

TEST(CudaLowra, DequantBitIdenticalToCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 128}, {576, 1536}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    LowraWeight q =
        mixed_lowra(randn({rows, cols}, 11, 0.05f), [](int64_t r) { return r % 3 == 0 ? 1 : r % 3 == 1 ? 2 : 4; });
    const quant::LowraPacked& p = q.packed();
    const auto [codes, o, b, l, a] = host_args(q, rows);
    Tensor cpu = Tensor::empty({rows, cols}, DType::F32);
    dequantize_lowra(cpu, codes, o, b, l, a);
    std::vector<float> ref(size_t(rows * cols));
    quant::dequantize_lowra_rows(p, 0, rows, ref.data());
    EXPECT_EQ(vec(cpu), ref);  // the op's CPU path is the packed form's own dequantizer
    Tensor dc = codes.to(Device::CUDA), dof = o.to(Device::CUDA), db = b.to(Device::CUDA);
    Tensor dl = l.to(Device::CUDA), da = a.to(Device::CUDA);
    Tensor f = Tensor::empty({rows, cols}, DType::F32, Device::CUDA);
    dequantize_lowra(f, dc, dof, db, dl, da);
    EXPECT_EQ(vec(f), vec(cpu));
    Tensor bf = Tensor::empty({rows, cols}, DType::BF16, Device::CUDA);
    dequantize_lowra(bf, dc, dof, db, dl, da);
    EXPECT_EQ(vec(bf), vec(round_to(cpu, DType::BF16)));
    Tensor b2 = Tensor::empty({rows, cols}, DType::BF16, Device::CUDA);
    q.dequantize_on_device(b2);  // the weight's own upload
    EXPECT_EQ(vec(b2), vec(bf));
  }
}

// The decode product from the packed form against its CPU reference (the same
// BF16-rounded inputs; F32 sums in another order), and the weight's forward on
// one row (that product) against its dense path (dequantize + cuBLASLt).
TEST(CudaLowra, MatvecMatchesCpuAndTheDensePath) {
  QT_SKIP_WITHOUT_GPU();
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 128}, {1536, 576}}) {
    LowraWeight q =
        mixed_lowra(randn({rows, cols}, 3, 0.05f), [](int64_t r) { return r % 3 == 0 ? 4 : r % 3 == 1 ? 1 : 2; });
    const auto [codes, o, b, l, a] = host_args(q, rows);
    for (int64_t m : {1, 3, 8}) {
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " M " + std::to_string(m));
      Pair x = randn_pair({m, cols}, 20 + uint64_t(m), DType::BF16);
      Tensor yc = Tensor::empty({m, rows}, DType::F32), yg = Tensor::empty({m, rows}, DType::F32, Device::CUDA);
      lowra_matvec(yc, x.cpu, codes, o, b, l, a);
      lowra_matvec(yg, x.gpu, codes.to(Device::CUDA), o.to(Device::CUDA), b.to(Device::CUDA), l.to(Device::CUDA),
                   a.to(Device::CUDA));
      EXPECT_CLOSE(yg, yc, 1e-5);
      Tensor y1 = Tensor::empty({m, rows}, DType::BF16, Device::CUDA), y2 = Tensor::empty({m, rows}, DType::BF16, Device::CUDA);
      q.forward(y1, x.gpu);
      q.DequantWeight::forward(y2, x.gpu);
      EXPECT_CLOSE(y1, y2, kBf16Tol);
    }
  }
}

TEST(CudaLowra, ModelMatchesTheCpu) {
  QT_SKIP_WITHOUT_GPU();
  LoadedModel lm = load_synthetic_model("random:tiny-llama");
  const int B = 2, T = 16;
  std::vector<int32_t> ids(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) ids[size_t(i)] = (i * 37 + 5) % 512, tgt[size_t(i)] = (i * 53 + 11) % 512;
  for (double bits : {1.5, 2.5}) {
    auto make = [&](Device dev) {
      ModelOptions o;
      o.device = dev;
      o.method = "lowra";
      o.lowra_bits = bits;
      auto m = Model::create(lm.config, *lm.weights, o);
      uint64_t seed = 1;
      for (auto& p : m->params().params())  // B != 0 past LoftQ's start too: every gradient is live
        if (p.name.find("lora_B") != std::string::npos)
          add_inplace(p.value, randn(p.shape, seed++, 0.02f).to(dev, p.value.dtype()));
      return m;
    };
    expect_gpu_step_matches_cpu(make, TokenBatch{B, T, ids.data(), tgt.data()}, 1.f / float(B * T), 3e-2,
                                "lowra bits " + std::to_string(bits));
  }
}

}  // namespace
}  // namespace qtrain::testing
