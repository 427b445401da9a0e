#include "kernels/rope.h"

#include "kernels/attention.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaRope, ForwardAndBackwardMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    Shape s;
    float theta;
    DType dt;
  };
  // Long T: angles of thousands of radians, where a fast sin/cos would drift.
  // BF16 with D % 16 == 0 takes the 8-pairs-per-thread kernel; D = 24 the scalar one.
  for (const Case& c : {Case{{2, 129, 3, 64}, 10000.f, DType::BF16}, Case{{1, 2048, 2, 128}, 10000.f, DType::F32},
                        Case{{1, 300, 4, 64}, 500000.f, DType::F32}, Case{{2, 2048, 4, 128}, 10000.f, DType::BF16},
                        Case{{3, 17, 5, 24}, 10000.f, DType::BF16}}) {
    SCOPED_TRACE(shape_str(c.s));
    Pair x = randn_pair(c.s, 1, c.dt);
    rope_forward(x.cpu, c.theta);
    rope_forward(x.gpu, c.theta);
    EXPECT_CLOSE(x.gpu, x.cpu, c.dt == DType::BF16 ? kBf16Tol : 1e-5);
    Pair dx = randn_pair(c.s, 2, c.dt);
    rope_backward(dx.cpu, c.theta);
    rope_backward(dx.gpu, c.theta);
    EXPECT_CLOSE(dx.gpu, dx.cpu, c.dt == DType::BF16 ? kBf16Tol : 1e-5);
  }
}

// The fused launches: q and k together (forward and backward), and a decode pass's RoPE + cache
// append, against the separate GPU ops (the same bits) and the CPU reference. BF16 with D % 16 == 0
// takes the fused kernel, the rest the separate ops; GQA (Hq != Hkv), prompts (T > 1) at an offset.
TEST(CudaRope, FusedQkAndCacheAppendEqualTheSeparateOps) {
  QT_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t B, T, Hq, Hkv, D;
    int pos;
    DType dt;
  };
  for (const Case& c : {Case{1, 1, 32, 32, 128, 7, DType::BF16}, Case{2, 3, 8, 2, 64, 5, DType::BF16},
                        Case{3, 1, 9, 3, 64, 40, DType::BF16}, Case{2, 4, 6, 2, 24, 2, DType::BF16},
                        Case{2, 3, 4, 2, 32, 1, DType::F32}}) {
    SCOPED_TRACE(std::to_string(c.Hq) + "/" + std::to_string(c.Hkv) + " heads, D " + std::to_string(c.D) + " " +
                 dtype_name(c.dt));
    const int64_t Tc = c.pos + c.T + 3;
    const Pair q = randn_pair({c.B, c.T, c.Hq, c.D}, 1, c.dt), k = randn_pair({c.B, c.T, c.Hkv, c.D}, 2, c.dt);
    const Pair v = randn_pair({c.B, c.T, c.Hkv, c.D}, 3, c.dt);
    const Pair kc = randn_pair({c.B, Tc, c.Hkv, c.D}, 4, c.dt), vc = randn_pair({c.B, Tc, c.Hkv, c.D}, 5, c.dt);
    {  // forward, then backward, of q and k together: fused (f), separate (s), CPU (c)
      Tensor qf = q.gpu.clone(), kf = k.gpu.clone(), qs = q.gpu.clone(), ks = k.gpu.clone();
      Tensor qc = q.cpu.clone(), kcpu = k.cpu.clone();
      for (bool backward : {false, true}) {
        SCOPED_TRACE(backward ? "backward" : "forward");
        if (backward) {
          rope_qk_backward(qf, kf, 10000.f, c.pos);
          rope_qk_backward(qc, kcpu, 10000.f, c.pos);
        } else {
          rope_qk_forward(qf, kf, 10000.f, c.pos);
          rope_qk_forward(qc, kcpu, 10000.f, c.pos);
        }
        for (Tensor* x : {&qs, &ks}) backward ? rope_backward(*x, 10000.f, c.pos) : rope_forward(*x, 10000.f, c.pos);
        EXPECT_EQ(vec(qf), vec(qs));
        EXPECT_EQ(vec(kf), vec(ks));
        EXPECT_CLOSE(qf, qc, tol_for(c.dt));
        EXPECT_CLOSE(kf, kcpu, tol_for(c.dt));
      }
    }
    // RoPE + append, with the position on the host and read from the device (a replayed decode step).
    Tensor p = Tensor::wrap(const_cast<int*>(&c.pos), {1}, DType::I32).to(Device::CUDA);
    for (bool on_device : {false, true}) {
      SCOPED_TRACE(on_device ? "device position" : "host position");
      const SeqPos pos = on_device ? SeqPos(0, p.i32(), int(Tc)) : SeqPos(c.pos);
      Tensor qf = q.gpu.clone(), kf = k.gpu.clone(), kcf = kc.gpu.clone(), vcf = vc.gpu.clone();
      Tensor qs = q.gpu.clone(), ks = k.gpu.clone(), kcs = kc.gpu.clone(), vcs = vc.gpu.clone();
      Tensor qc = q.cpu.clone(), kcpu = k.cpu.clone(), kcc = kc.cpu.clone(), vcc = vc.cpu.clone();
      rope_append_kv(qf, kf, v.gpu, kcf, vcf, 10000.f, pos);
      rope_forward(qs, 10000.f, c.pos);
      rope_forward(ks, 10000.f, c.pos);
      kv_cache_write(kcs, ks, c.pos);
      kv_cache_write(vcs, v.gpu, c.pos);
      rope_append_kv(qc, kcpu, v.cpu, kcc, vcc, 10000.f, c.pos);
      EXPECT_EQ(vec(qf), vec(qs));
      EXPECT_EQ(vec(kf), vec(ks));
      EXPECT_EQ(vec(kcf), vec(kcs));
      EXPECT_EQ(vec(vcf), vec(vcs));
      EXPECT_CLOSE(kcf, kcc, tol_for(c.dt));
      EXPECT_EQ(vec(vcf), vec(vcc));  // a copy: exact
    }
  }
}

}  // namespace
}  // namespace qtrain::testing
