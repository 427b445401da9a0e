// CUDA quantized-weight ops vs their CPU reference (kernels/quant_matmul.h):
// dequantization bit-identical in F32 (and the RNE of it in BF16), the 4-bit
// GEMV within BF16 tolerance, on odd shapes and row offsets.
#include <cstring>

#include "kernels/activation.h"
#include "kernels/device.h"
#include "kernels/dtype.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/quant_matmul.h"
#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

Quant4Tensor make4(int64_t rows, int64_t cols, quant::Code4 code, bool dq, uint64_t seed) {
  Tensor w = randn({rows, cols}, seed, 0.05f);
  return Quant4Tensor::from_packed(quant::quantize_4bit(w.f32(), w.numel(), code, dq), rows, cols);
}

TEST(CudaQuant, Dequantize4bitBitIdenticalToCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t rows, cols, row0;
  };
  // 576x1536: vector path; 37x130: partial blocks spanning rows, scalar path for odd row0*cols
  for (Case c : {Case{576, 1536, 0}, Case{576, 1536, 100}, Case{37, 130, 0}, Case{37, 130, 3}, Case{5, 7, 1}})
    for (auto code : {quant::Code4::NF4, quant::Code4::FP4})
      for (bool dq : {false, true}) {
        SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.cols) + " row0 " + std::to_string(c.row0) +
                     (dq ? " dq" : ""));
        Quant4Tensor h = make4(c.rows, c.cols, code, dq, 11), d = h.to(Device::CUDA);
        Tensor ref = Tensor::empty({c.rows - c.row0, c.cols}, DType::F32);
        dequantize_rows_4bit(ref, h, c.row0);
        Tensor f = Tensor::empty(ref.shape(), DType::F32, Device::CUDA);
        dequantize_rows_4bit(f, d, c.row0);
        EXPECT_EQ(vec(f), vec(ref));
        Tensor b = Tensor::empty(ref.shape(), DType::BF16, Device::CUDA);
        dequantize_rows_4bit(b, d, c.row0);
        EXPECT_EQ(vec(b), vec(round_to(ref, DType::BF16)));
      }
}

TEST(CudaQuant, DequantizeInt8BitIdenticalToCpu) {
  QT_SKIP_WITHOUT_GPU();
  Tensor w = randn({67, 300}, 5, 0.1f);
  Int8Tensor h = Int8Tensor::from_rows(quant::quantize_int8_rows(w.f32(), 67, 300)), d = h.to(Device::CUDA);
  Tensor ref = Tensor::empty({60, 300}, DType::F32);
  dequantize_rows_int8(ref, h, 7);
  Tensor f = Tensor::empty({60, 300}, DType::F32, Device::CUDA);
  dequantize_rows_int8(f, d, 7);
  EXPECT_EQ(vec(f), vec(ref));
}

TEST(CudaQuant, Gemv4bitMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t rows, cols;
  };
  // 4096 cols: 64 k-tiles over 8 warps; 11008 (LLaMA down_proj): 172, a ragged last round of loads;
  // 17024: more rounds; 576x1536 SmolLM2; rows 37, 9, 300: partial 16-row groups; 130 cols: the
  // dequant+gemm fallback. M 8 | 9: the two tensor-core variants' edge (x rows 8..15 used or not).
  // The streamed kernel's steps (launch_gemv4_stream_for): 4 tiles with word-loaded codes (4096 and
  // 11008 with double quant), 4 with F32 absmax (no double quant) or per-tile codes (17024: 266
  // tiles, not whole words), 2 (1536), 2 with a ragged pair (1088: 17 tiles), 1 (576).
  // The ring kernel takes 4096 and 11008 with double quant (its contiguous per-warp ranges: 8 and 20-22
  // tiles, steps of 4 and 2 tiles, code words that straddle a step), the streamed one the rest.
  for (Gemv4Kernel k : {Gemv4Kernel::TensorCore, Gemv4Kernel::TensorCoreRing, Gemv4Kernel::TensorCoreBatched,
                        Gemv4Kernel::CudaCore}) {
    const bool simt = k == Gemv4Kernel::CudaCore;
    set_gemv4_kernel(k);
    for (Case c : {Case{300, 4096}, Case{37, 11008}, Case{9, 17024}, Case{576, 1536}, Case{45, 1088}, Case{1536, 576},
                   Case{33, 130}})
      for (bool dq : {false, true})
        for (int64_t M : {1, 3, 8, 9, 16}) {
          SCOPED_TRACE(std::string(simt                                ? "simt "
                                   : k == Gemv4Kernel::TensorCore     ? "mma "
                                   : k == Gemv4Kernel::TensorCoreRing ? "mma-ring "
                                                                      : "mma-batched ") +
                       std::to_string(c.rows) + "x" + std::to_string(c.cols) +
                       " M " + std::to_string(M) + (dq ? " dq" : ""));
          Quant4Tensor h = make4(c.rows, c.cols, quant::Code4::NF4, dq, 21), d = h.to(Device::CUDA);
          Pair x = randn_pair({M, c.cols}, 22, DType::BF16);
          Tensor y_cpu = Tensor::empty({M, c.rows}, DType::F32);
          matmul_4bit(y_cpu, x.cpu, h);
          for (DType yt : {DType::F32, DType::BF16}) {
            Tensor y = Tensor::empty({M, c.rows}, yt, Device::CUDA);
            matmul_4bit(y, x.gpu, d);
            // The CUDA-core GEMV decodes W in F32 (exact); the tensor-core one feeds the codes to the
            // mma in BF16 (2^-9 relative each, absmax applied in F32), the fallback rounds W to BF16.
            const bool gemv = c.cols % 64 == 0;
            const double tol = yt == DType::BF16 || !gemv ? kBf16Tol : simt ? 1e-5 : 3e-3;
            EXPECT_CLOSE(y, y_cpu, tol);
          }
        }
  }
  set_gemv4_kernel(Gemv4Kernel::TensorCore);
}

// Products that share their input as one launch (matmul_4bit_shared: LLaMA's q/k/v and gate/up at
// decode): each output is matmul_4bit's, bit for bit, and the CPU reference's within the GEMV's
// tolerance. Parts of 300 / 37 / 64 rows (partial 16-row groups at the parts' seams), with and
// without double quant in one set; NF4 + FP4 (different codes) takes the one-by-one path. The two
// 2400-row parts are 300 groups, over the 264 resident blocks of an H100/H200, so at M <= 4 the set
// reads x from shared memory (gemv4_x_in_smem) where each part alone reads it from global memory.
TEST(CudaQuant, Gemv4bitSharedInputEqualsEachProduct) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t cols = 4096;
  struct Part {
    int64_t rows;
    quant::Code4 code;
    bool dq;
  };
  const std::vector<std::vector<Part>> sets = {
      {{300, quant::Code4::NF4, true}, {37, quant::Code4::NF4, false}, {64, quant::Code4::NF4, true}},
      {{2400, quant::Code4::NF4, true}, {2400, quant::Code4::NF4, true}},
      {{48, quant::Code4::NF4, true}, {80, quant::Code4::FP4, true}}};
  for (Gemv4Kernel k : {Gemv4Kernel::TensorCore, Gemv4Kernel::TensorCoreRing}) {
    set_gemv4_kernel(k);
    for (const auto& set : sets) {
      std::vector<Quant4Tensor> hw, dw;
      for (const Part& p : set) {
        hw.push_back(make4(p.rows, cols, p.code, p.dq, 60 + int(hw.size())));
        dw.push_back(hw.back().to(Device::CUDA));
      }
      std::vector<const Quant4Tensor*> hp, dp;
      for (size_t i = 0; i < set.size(); ++i) hp.push_back(&hw[i]), dp.push_back(&dw[i]);
      for (int64_t M : {1, 3, 8, 9, 16}) {
        SCOPED_TRACE(std::string(k == Gemv4Kernel::TensorCoreRing ? "ring, " : "") + std::to_string(set.size()) +
                     " parts, " + std::to_string(set[0].rows) + " rows first, M " + std::to_string(M));
        Pair x = randn_pair({M, cols}, 70 + uint64_t(M), DType::BF16);
        std::vector<Tensor> yc, ys, y1;
        for (const Part& p : set) {
          yc.push_back(Tensor::empty({M, p.rows}, DType::F32));
          ys.push_back(Tensor::empty({M, p.rows}, DType::BF16, Device::CUDA));
          y1.push_back(Tensor::empty({M, p.rows}, DType::BF16, Device::CUDA));
        }
        matmul_4bit_shared(yc, x.cpu, hp);
        matmul_4bit_shared(ys, x.gpu, dp);
        for (size_t i = 0; i < set.size(); ++i) {
          matmul_4bit(y1[i], x.gpu, dw[i]);
          EXPECT_EQ(ys[i].to(Device::CPU, DType::F32).to_vector(), y1[i].to(Device::CPU, DType::F32).to_vector()) << i;
          EXPECT_CLOSE(ys[i], yc[i], kBf16Tol);
        }
      }
    }
  }
  set_gemv4_kernel(Gemv4Kernel::TensorCore);
  // Mismatched inputs are refused, naming the op.
  std::vector<Quant4Tensor> two = {make4(16, 128, quant::Code4::NF4, false, 1).to(Device::CUDA),
                                   make4(16, 256, quant::Code4::NF4, false, 2).to(Device::CUDA)};
  Tensor x = Tensor::empty({1, 128}, DType::BF16, Device::CUDA);
  EXPECT_THROW(matmul_4bit_shared({Tensor::empty({1, 16}, DType::BF16, Device::CUDA),
                                   Tensor::empty({1, 16}, DType::BF16, Device::CUDA)},
                                  x, {&two[0], &two[1]}),
               Error);
}

// The residual add and RMSNorm made inside the GEMV set (add_rmsnorm_matmul_4bit_shared): where it
// folds (two 2400-row parts at M <= 3: x in shared memory, see above), one launch gives h, rstd, the
// sum and the products with the bits of the norm's own kernel followed by matmul_4bit_shared, for a
// residual or none and BF16 or F32 norm weights; at M = 8 it does not fold and takes that path. Both
// within the GEMV's tolerance of the CPU reference, and the CPU op leaves the sum in x.
TEST(CudaQuant, Gemv4bitFoldsResidualRmsNorm) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t cols = 4096, rows = 2400;
  const float eps = 1e-5f;
  std::vector<Quant4Tensor> hw, dw;
  for (int i = 0; i < 2; ++i) hw.push_back(make4(rows, cols, quant::Code4::NF4, true, 80 + uint64_t(i))), dw.push_back(hw.back().to(Device::CUDA));
  const std::vector<const Quant4Tensor*> hp = {&hw[0], &hw[1]}, dp = {&dw[0], &dw[1]};
  for (int64_t M : {1, 3, 8})
    for (bool with_r : {true, false})
      for (DType wdt : {DType::BF16, DType::F32}) {
        SCOPED_TRACE("M " + std::to_string(M) + (with_r ? ", residual" : ", no residual") + ", w " + dtype_name(wdt));
        const uint64_t seed = 90 + uint64_t(M) * 4 + (with_r ? 2 : 0) + (wdt == DType::F32);
        Pair x = randn_pair({M, cols}, seed, DType::BF16), r = randn_pair({M, cols}, seed + 100, DType::BF16);
        Pair w = randn_pair({cols}, seed + 200, wdt, 0.5f);
        const auto outs = [&](Device d, DType dt) {
          return std::vector<Tensor>{Tensor::empty({M, rows}, dt, d), Tensor::empty({M, rows}, dt, d)};
        };
        // The folded launch (where it applies), on a copy of x: the CPU path adds r into x.
        std::vector<Tensor> yf = outs(Device::CUDA, DType::BF16);
        Tensor hf = Tensor::empty({M, cols}, DType::BF16, Device::CUDA), rf = Tensor::empty({M}, DType::F32, Device::CUDA);
        Tensor xf = x.gpu.clone();
        const Tensor sf = add_rmsnorm_matmul_4bit_shared(yf, hf, rf, xf, with_r ? r.gpu : Tensor(), w.gpu, eps, dp);
        const bool folds = M <= 3;
        EXPECT_EQ(sf.raw() != xf.raw(), folds && with_r) << "the sum in a tensor of its own exactly where it folds";
        if (folds || !with_r) EXPECT_EQ(vec(xf), vec(x.gpu)) << "x is read only where it folds";
        // The two ops.
        std::vector<Tensor> yu = outs(Device::CUDA, DType::BF16);
        Tensor hu = Tensor::empty({M, cols}, DType::BF16, Device::CUDA), ru = Tensor::empty({M}, DType::F32, Device::CUDA);
        Tensor xu = x.gpu.clone();
        if (with_r)
          add_rmsnorm_forward(hu, ru, xu, r.gpu, w.gpu, eps);
        else
          rmsnorm_forward(hu, ru, xu, w.gpu, eps);
        matmul_4bit_shared(yu, hu, dp);
        EXPECT_EQ(vec(hf), vec(hu));
        EXPECT_EQ(vec(rf), vec(ru));
        EXPECT_EQ(vec(sf), vec(xu));
        for (int i = 0; i < 2; ++i) EXPECT_EQ(vec(yf[size_t(i)]), vec(yu[size_t(i)])) << i;
        // The CPU reference.
        std::vector<Tensor> yc = outs(Device::CPU, DType::F32);
        Tensor hc = Tensor::empty({M, cols}, DType::F32), rc = Tensor::empty({M}, DType::F32), xc = x.cpu.clone();
        const Tensor sc = add_rmsnorm_matmul_4bit_shared(yc, hc, rc, xc, with_r ? r.cpu : Tensor(), w.cpu, eps, hp);
        EXPECT_EQ(sc.raw(), xc.raw());
        EXPECT_CLOSE(sf, sc, kBf16Tol);
        EXPECT_CLOSE(hf, hc, kBf16Tol);
        EXPECT_CLOSE(rf, rc, kBf16Tol);
        for (int i = 0; i < 2; ++i) EXPECT_CLOSE(yf[size_t(i)], yc[size_t(i)], 2 * kBf16Tol);
      }
  // Switched off: the norm's own kernel, x added in place.
  set_gemv4_norm_inside(false);
  Pair x = randn_pair({1, cols}, 5, DType::BF16), r = randn_pair({1, cols}, 6, DType::BF16);
  Tensor w = Tensor::from_vector(std::vector<float>(size_t(cols), 1.f), {cols}, Device::CUDA, DType::BF16);
  std::vector<Tensor> y = {Tensor::empty({1, rows}, DType::BF16, Device::CUDA), Tensor::empty({1, rows}, DType::BF16, Device::CUDA)};
  Tensor h = Tensor::empty({1, cols}, DType::BF16, Device::CUDA), rs = Tensor::empty({1}, DType::F32, Device::CUDA);
  EXPECT_EQ(add_rmsnorm_matmul_4bit_shared(y, h, rs, x.gpu, r.gpu, w, eps, dp).raw(), x.gpu.raw());
  set_gemv4_norm_inside(true);
  // Bad operands name the op and the operand.
  try {
    add_rmsnorm_matmul_4bit_shared(y, h, Tensor::empty({2}, DType::F32, Device::CUDA), x.gpu, r.gpu, w, eps, dp);
    ADD_FAILURE() << "a wrong rstd length was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add_rmsnorm_matmul_4bit_shared rstd"), std::string::npos) << e.what();
  }
}

// SwiGLU in the epilogue of the GEMV that makes the norm (add_rmsnorm_matmul_4bit_swiglu: a group is 8
// rows of gate and the same 8 of up). s, h, rstd and the sum are the bits of add_rmsnorm_matmul_4bit_shared
// followed by swiglu_forward, at M = 1 and 3 (one launch) and 8 (no fold: those ops), with a residual or
// none, and with the fold switched off; within tolerance of the CPU reference. 2408 rows: 301 groups, so
// the last group's rows are the last 8 of each (a 16-row grouping would be ragged there); gate and up
// from different seeds, so their double-quant offsets differ.
TEST(CudaQuant, Gemv4bitFoldsSwiglu) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t cols = 4096, rows = 2408;
  const float eps = 1e-5f;
  std::vector<Quant4Tensor> hw, dw;
  for (int i = 0; i < 2; ++i) hw.push_back(make4(rows, cols, quant::Code4::NF4, true, 180 + uint64_t(i))), dw.push_back(hw.back().to(Device::CUDA));
  ASSERT_NE(hw[0].view().offset, hw[1].view().offset);
  const std::vector<const Quant4Tensor*> dp = {&dw[0], &dw[1]};
  for (bool inside : {true, false})
    for (int64_t M : {1, 3, 8})
      for (bool with_r : {true, false}) {
        if (!inside && M != 1) continue;
        SCOPED_TRACE("M " + std::to_string(M) + (with_r ? ", residual" : ", no residual") + (inside ? "" : ", switched off"));
        set_gemv4_swiglu_inside(inside);
        const uint64_t seed = 300 + uint64_t(M) * 4 + (with_r ? 2 : 0);
        Pair x = randn_pair({M, cols}, seed, DType::BF16), r = randn_pair({M, cols}, seed + 100, DType::BF16);
        Pair w = randn_pair({cols}, seed + 200, DType::BF16, 0.5f);
        const auto act = [&](int64_t n, Device d, DType dt) { return Tensor::empty({M, n}, dt, d); };
        Tensor sf = act(rows, Device::CUDA, DType::BF16), hf = act(cols, Device::CUDA, DType::BF16);
        Tensor rf = Tensor::empty({M}, DType::F32, Device::CUDA), xf = x.gpu.clone();
        const Tensor sumf = add_rmsnorm_matmul_4bit_swiglu(sf, hf, rf, xf, with_r ? r.gpu : Tensor(), w.gpu, eps, dw[0], dw[1]);
        // The products, then SwiGLU of them.
        std::vector<Tensor> yu = {act(rows, Device::CUDA, DType::BF16), act(rows, Device::CUDA, DType::BF16)};
        Tensor su = act(rows, Device::CUDA, DType::BF16), hu = act(cols, Device::CUDA, DType::BF16);
        Tensor ru = Tensor::empty({M}, DType::F32, Device::CUDA), xu = x.gpu.clone();
        const Tensor sumu = add_rmsnorm_matmul_4bit_shared(yu, hu, ru, xu, with_r ? r.gpu : Tensor(), w.gpu, eps, dp);
        swiglu_forward(su, yu[0], yu[1]);
        EXPECT_EQ(vec(sf), vec(su));
        EXPECT_EQ(vec(hf), vec(hu));
        EXPECT_EQ(vec(rf), vec(ru));
        EXPECT_EQ(vec(sumf), vec(sumu));
        EXPECT_EQ(sumf.raw() != xf.raw(), sumu.raw() != xu.raw()) << "the sum where the norm alone puts it";
        // The CPU reference.
        Tensor sc = act(rows, Device::CPU, DType::F32), hc = act(cols, Device::CPU, DType::F32);
        Tensor rc = Tensor::empty({M}, DType::F32), xc = x.cpu.clone();
        const Tensor sumc = add_rmsnorm_matmul_4bit_swiglu(sc, hc, rc, xc, with_r ? r.cpu : Tensor(), w.cpu, eps, hw[0], hw[1]);
        EXPECT_EQ(sumc.raw(), xc.raw());
        EXPECT_CLOSE(sumf, sumc, kBf16Tol);
        EXPECT_CLOSE(hf, hc, kBf16Tol);
        EXPECT_CLOSE(sf, sc, 3 * kBf16Tol);
      }
  set_gemv4_swiglu_inside(true);
  // Bad operands name the op.
  Quant4Tensor other = make4(rows - 8, cols, quant::Code4::NF4, true, 7).to(Device::CUDA);
  Pair x = randn_pair({1, cols}, 5, DType::BF16);
  Tensor s = Tensor::empty({1, rows}, DType::BF16, Device::CUDA), h = Tensor::empty({1, cols}, DType::BF16, Device::CUDA);
  try {
    add_rmsnorm_matmul_4bit_swiglu(s, h, Tensor::empty({1}, DType::F32, Device::CUDA), x.gpu, Tensor(), x.gpu.view({cols}),
                                   1e-5f, dw[0], other);
    ADD_FAILURE() << "gate and up of different rows were taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add_rmsnorm_matmul_4bit_swiglu: gate and up"), std::string::npos) << e.what();
  }
}

// RoPE and the cache append in the epilogue of the GEMV that makes the norm (add_rmsnorm_matmul_4bit_rope_kv:
// a group of q's or k's rows is 8 rows i of a head and the 8 rows i + D/2). q, k, v, the whole cache, h,
// rstd and the sum are the bits of add_rmsnorm_matmul_4bit_shared followed by rope_append_kv, for one
// token (B 1 and 3), three tokens of one row (T 3: a position each), at a position from the host and
// one read from device memory (a replayed step's), for B 8 (no fold: those ops), and with the fold
// switched off; within tolerance of the CPU reference. GQA shapes: 32 query heads, 8 kv heads of 128.
TEST(CudaQuant, Gemv4bitFoldsRopeKv) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t C = 4096, Hq = 32, Hkv = 8, D = 128, Tc = 16;
  const float eps = 1e-5f, theta = 10000.f;
  std::vector<Quant4Tensor> hw, dw;
  for (int64_t i = 0; i < 3; ++i)
    hw.push_back(make4((i ? Hkv : Hq) * D, C, quant::Code4::NF4, true, 400 + uint64_t(i))), dw.push_back(hw.back().to(Device::CUDA));
  const std::vector<const Quant4Tensor*> dp = {&dw[0], &dw[1], &dw[2]};
  const bool rope_default = gemv4_rope_inside();  // off unless QT_GEMV4_ROPE=1: checked on here either way
  struct Case {
    int64_t B, T;
    bool dev_pos, inside;
  };
  for (Case c : {Case{1, 1, false, true}, Case{3, 1, false, true}, Case{1, 3, false, true}, Case{1, 1, true, true},
                 Case{8, 1, false, true}, Case{1, 1, false, false}}) {
    const int64_t N = c.B * c.T;
    SCOPED_TRACE("B " + std::to_string(c.B) + " T " + std::to_string(c.T) + (c.dev_pos ? ", position on the device" : "") +
                 (c.inside ? "" : ", switched off"));
    set_gemv4_rope_inside(c.inside);
    const uint64_t seed = 500 + uint64_t(N) * 8 + (c.dev_pos ? 1 : 0) + (c.inside ? 0 : 2);
    Pair x = randn_pair({N, C}, seed, DType::BF16), r = randn_pair({N, C}, seed + 100, DType::BF16);
    Pair w = randn_pair({C}, seed + 200, DType::BF16, 0.5f);
    Pair cache = randn_pair({c.B, Tc, Hkv, D}, seed + 300, DType::BF16);
    // A replayed step reads its position from device memory: 7 there, a stale 5 on the host.
    int32_t seven = 7;
    const Tensor dpos = Tensor::wrap(&seven, {1}, DType::I32).to(Device::CUDA);
    const SeqPos pos = c.dev_pos ? SeqPos(5, static_cast<const int32_t*>(dpos.raw()), Tc) : SeqPos(5);
    struct Out {
      Tensor q, k, v, h, rstd, kc, vc, sum, x;
    };
    const auto outs = [&](Device d, DType dt, const Pair& xp, const Pair& cp) {
      Out o;
      o.q = Tensor::empty({c.B, c.T, Hq, D}, dt, d), o.k = Tensor::empty({c.B, c.T, Hkv, D}, dt, d);
      o.v = Tensor::empty({c.B, c.T, Hkv, D}, dt, d), o.h = Tensor::empty({N, C}, dt, d), o.rstd = Tensor::empty({N}, DType::F32, d);
      o.kc = (d == Device::CUDA ? cp.gpu : cp.cpu).clone(), o.vc = (d == Device::CUDA ? cp.gpu : cp.cpu).clone();
      o.x = (d == Device::CUDA ? xp.gpu : xp.cpu).clone();
      return o;
    };
    Out f = outs(Device::CUDA, DType::BF16, x, cache);
    f.sum = add_rmsnorm_matmul_4bit_rope_kv(f.q, f.k, f.v, f.h, f.rstd, f.x, r.gpu, w.gpu, eps, dw[0], dw[1], dw[2], f.kc,
                                            f.vc, theta, pos);
    Out u = outs(Device::CUDA, DType::BF16, x, cache);
    u.sum = add_rmsnorm_matmul_4bit_shared({u.q.view({N, Hq * D}), u.k.view({N, Hkv * D}), u.v.view({N, Hkv * D})}, u.h,
                                           u.rstd, u.x, r.gpu, w.gpu, eps, dp);
    rope_append_kv(u.q, u.k, u.v, u.kc, u.vc, theta, pos);
    EXPECT_EQ(vec(f.q), vec(u.q));
    EXPECT_EQ(vec(f.k), vec(u.k));
    EXPECT_EQ(vec(f.v), vec(u.v));
    EXPECT_EQ(vec(f.kc), vec(u.kc));
    EXPECT_EQ(vec(f.vc), vec(u.vc));
    EXPECT_EQ(vec(f.h), vec(u.h));
    EXPECT_EQ(vec(f.rstd), vec(u.rstd));
    EXPECT_EQ(vec(f.sum), vec(u.sum));
    EXPECT_NE(vec(f.kc), vec(cache.gpu)) << "something was appended";
    // The CPU reference (its position from the host: the device's 7 where the step reads that).
    Out h = outs(Device::CPU, DType::F32, x, cache);
    h.sum = add_rmsnorm_matmul_4bit_rope_kv(h.q, h.k, h.v, h.h, h.rstd, h.x, r.cpu, w.cpu, eps, hw[0], hw[1], hw[2], h.kc,
                                            h.vc, theta, SeqPos(c.dev_pos ? 7 : 5));
    EXPECT_CLOSE(f.q, h.q, 2 * kBf16Tol);
    EXPECT_CLOSE(f.k, h.k, 2 * kBf16Tol);
    EXPECT_CLOSE(f.v, h.v, 2 * kBf16Tol);
    EXPECT_CLOSE(f.kc, h.kc, 2 * kBf16Tol);
    EXPECT_CLOSE(f.vc, h.vc, 2 * kBf16Tol);
    EXPECT_CLOSE(f.sum, h.sum, kBf16Tol);
  }
  set_gemv4_rope_inside(true);
  // One token at every position of the cache, fused against the two ops: 16 x 6144 rotated values, where
  // an F32 ulp between the two (an FMA in one and not the other) shows as BF16 ulps somewhere.
  Pair x = randn_pair({1, C}, 600, DType::BF16), w = randn_pair({C}, 601, DType::BF16, 0.5f);
  Tensor cf = randn_pair({1, Tc, Hkv, D}, 602, DType::BF16).gpu, cu = cf.clone();
  for (int p = 0; p < Tc; ++p) {
    SCOPED_TRACE("position " + std::to_string(p));
    std::vector<Tensor> f, u;
    for (int64_t H : {Hq, Hkv, Hkv}) {
      f.push_back(Tensor::empty({1, 1, H, D}, DType::BF16, Device::CUDA));
      u.push_back(Tensor::empty({1, 1, H, D}, DType::BF16, Device::CUDA));
    }
    Tensor h = Tensor::empty({1, C}, DType::BF16, Device::CUDA), rs = Tensor::empty({1}, DType::F32, Device::CUDA);
    add_rmsnorm_matmul_4bit_rope_kv(f[0], f[1], f[2], h, rs, x.gpu, Tensor(), w.gpu, eps, dw[0], dw[1], dw[2], cf,
                                    cf.clone(), theta, SeqPos(p));
    add_rmsnorm_matmul_4bit_shared({u[0].view({1, Hq * D}), u[1].view({1, Hkv * D}), u[2].view({1, Hkv * D})}, h, rs,
                                   x.gpu, Tensor(), w.gpu, eps, dp);
    rope_append_kv(u[0], u[1], u[2], cu, cu.clone(), theta, SeqPos(p));
    EXPECT_EQ(vec(f[0]), vec(u[0]));
    EXPECT_EQ(vec(f[1]), vec(u[1]));
  }
  EXPECT_EQ(vec(cf), vec(cu));
  set_gemv4_rope_inside(rope_default);
}

// Programmatic dependent launch: each product's preamble runs while the previous kernel finishes,
// and it must still read that kernel's output. A chain of products, each reading the one before
// (square weights, y_k = W_k y_{k-1}, with an elementwise op between two of them), eagerly and
// replayed as a captured graph, equals the CPU chain; and the plain launch gives the same bits.
TEST(CudaQuant, Gemv4bitChainedUnderPdl) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t n = 1024;  // PDL is used for weights up to 4 MiB (launch_gemv4_mma)
  std::vector<Quant4Tensor> hw, dw;
  for (int k = 0; k < 4; ++k) {
    hw.push_back(make4(n, n, quant::Code4::NF4, true, 40 + k));
    dw.push_back(hw.back().to(Device::CUDA));
  }
  for (int64_t M : {1, 8}) {
    SCOPED_TRACE("M " + std::to_string(M));
    Pair x = randn_pair({M, n}, 50, DType::BF16);
    // The CPU chain on the values the GPU sees: each product's output rounded to BF16.
    Tensor ref = x.cpu;
    for (int k = 0; k < 4; ++k) {
      Tensor y = Tensor::empty({M, n}, DType::F32);
      matmul_4bit(y, ref, hw[size_t(k)]);
      if (k == 1) scale_inplace(y, 2.f);
      ref = round_to(y, DType::BF16);
    }
    std::vector<Tensor> ys;
    for (int k = 0; k < 4; ++k) ys.push_back(Tensor::empty({M, n}, DType::BF16, Device::CUDA));
    const auto chain = [&] {
      Tensor in = x.gpu;
      for (int k = 0; k < 4; ++k) {
        matmul_4bit(ys[size_t(k)], in, dw[size_t(k)]);
        if (k == 1) scale_inplace(ys[1], 2.f);
        in = ys[size_t(k)];
      }
    };
    std::vector<float> eager_bits;
    for (bool pdl : {true, false}) {
      SCOPED_TRACE(pdl ? "pdl" : "plain launch");
      set_decode_pdl(pdl);
      for (auto& y : ys) y.zero_();
      chain();
      EXPECT_CLOSE(ys[3].to(Device::CPU, DType::F32), ref, 3e-2);
      if (pdl) eager_bits = ys[3].to(Device::CPU, DType::F32).to_vector();
      else EXPECT_EQ(ys[3].to(Device::CPU, DType::F32).to_vector(), eager_bits) << "PDL changed the result";
    }
    set_decode_pdl(true);
    CudaGraph g;
    g.begin_capture();
    chain();
    std::string why;
    ASSERT_TRUE(g.end_capture(&why)) << why;
    for (int rep = 0; rep < 3; ++rep) {
      for (auto& y : ys) y.zero_();
      g.replay();
      EXPECT_EQ(ys[3].to(Device::CPU, DType::F32).to_vector(), eager_bits) << "replay " << rep;
    }
  }
}

TEST(CudaQuant, Int8MatmulMatchesCpuDecomposition) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t n, k, out;
  };
  // 2100 rows: many 16-row epilogue tiles; 11008 columns (LLaMA down_proj); 1100 rows into
  // 16384 outputs: two int32 row chunks (64 MB each).
  for (Case c : {Case{37, 256, 300}, Case{2100, 1024, 512}, Case{40, 11008, 64}, Case{1100, 256, 16384}}) {
    Tensor w = randn({c.out, c.k}, 31, 0.05f);
    Int8Tensor h = Int8Tensor::from_rows(quant::quantize_int8_rows(w.f32(), c.out, c.k)), d = h.to(Device::CUDA);
    Tensor xf = randn({c.n, c.k}, 32);
    // outlier features: 40 columns over the threshold somewhere, one of them in every row
    for (int64_t j = 3; j < c.k; j += c.k / 40) xf.f32()[((j * 7) % c.n) * c.k + j] = 9.f + float(j % 5);
    for (int64_t i = 0; i < c.n; ++i) xf.f32()[i * c.k + 3] = -20.f;
    Pair x = pair(xf, DType::BF16);
    for (float threshold : {6.f, 0.f}) {
      SCOPED_TRACE(std::to_string(c.n) + "x" + std::to_string(c.k) + "->" + std::to_string(c.out) + " threshold " +
                   std::to_string(threshold));
      Tensor y_cpu = Tensor::empty({c.n, c.out}, DType::F32);
      int8_matmul(y_cpu, x.cpu, h, threshold);
      for (DType yt : {DType::F32, DType::BF16}) {
        Tensor y = Tensor::empty({c.n, c.out}, yt, Device::CUDA);
        int8_matmul(y, x.gpu, d, threshold);
        // the same int8 codes, exact int32 sums, the same F32 epilogue: equal up to BF16 storage
        EXPECT_CLOSE(y, y_cpu, yt == DType::F32 ? 1e-6 : kBf16Tol);
      }
    }
  }
}

}  // namespace
}  // namespace qtrain::testing
