// The GPU decode attention against the CPU reference on the same rounded
// values. The cases cover the kernel's paths (kernels/cuda/attention_cached.cu):
// GQA groups of 1, 3, 4, 8, 9 and 12 query heads per kv head (one block per
// group of up to 8 heads), head dims 8..256 and an odd one (element-wise
// loads), several key tiles in one block, rows whose keys are split over
// several blocks and combined by the last one or in a cluster, Tq > 1 (each row its own
// causal limit), batch > 1, BF16/F16/F32 caches, and a captured graph
// replayed at positions read from device memory.
#include <cuda_runtime.h>

#include <string>

#include "kernels/attention.h"
#include "kernels/device.h"
#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

struct Case {
  int64_t B, Tq, Hq, Hkv, D, cap;
  int pos0;
  DType dt = DType::BF16;
  float qscale = 1.f;  // > 1: peaked softmax, so a split combined with wrong weights is far off
};

std::string name(const Case& c) {
  return "B " + std::to_string(c.B) + " Tq " + std::to_string(c.Tq) + " Hq " + std::to_string(c.Hq) + " Hkv " +
         std::to_string(c.Hkv) + " D " + std::to_string(c.D) + " cap " + std::to_string(c.cap) + " pos0 " +
         std::to_string(c.pos0) + " " + dtype_name(c.dt);
}

// F32 caches: only summation order and exp2f differ from the reference.
double tol(DType dt) { return dt == DType::F32 ? 1e-4 : kBf16Tol; }

void expect_matches_cpu(const Case& c) {
  SCOPED_TRACE(name(c));
  Pair q = randn_pair({c.B, c.Tq, c.Hq, c.D}, 1, c.dt, c.qscale);
  Pair kc = randn_pair({c.B, c.cap, c.Hkv, c.D}, 2, c.dt);
  Pair vc = randn_pair({c.B, c.cap, c.Hkv, c.D}, 3, c.dt);
  Pair out = pair(Tensor::zeros({c.B, c.Tq, c.Hq, c.D}, DType::F32), c.dt);
  attention_cached(out.cpu, q.cpu, kc.cpu, vc.cpu, c.pos0);
  attention_cached(out.gpu, q.gpu, kc.gpu, vc.gpu, c.pos0);
  EXPECT_CLOSE(out.gpu, out.cpu, tol(c.dt));
}

// Contexts of one tile or a few: one block a row, or where the rows are few
// (the default attention_cluster) a cluster of blocks a row.
TEST(CudaAttentionCached, MatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (Case c : {Case{1, 1, 4, 2, 16, 40, 0}, Case{1, 1, 9, 3, 64, 300, 257}, Case{2, 1, 32, 8, 128, 130, 128},
                 Case{2, 3, 12, 12, 64, 64, 20}, Case{1, 5, 4, 1, 8, 8, 3},
                 // The profiled shapes (SmolLM2-135M, LLaMA-7B) at a 192-token context.
                 Case{1, 1, 9, 3, 64, 256, 191}, Case{8, 1, 9, 3, 64, 256, 191}, Case{1, 1, 32, 32, 128, 256, 191},
                 // GQA 4 and 8; 9 and 12 heads per kv head take two blocks of up to 8.
                 Case{1, 1, 32, 8, 128, 256, 150}, Case{2, 1, 16, 2, 64, 200, 99}, Case{1, 1, 9, 1, 64, 100, 70},
                 Case{1, 2, 24, 2, 64, 64, 40},
                 // Several tiles in one block (D 128: 128 keys a tile), one split (capacity 512).
                 Case{1, 1, 8, 8, 128, 512, 500, DType::BF16, 2.f}, Case{2, 3, 6, 2, 64, 512, 480, DType::BF16, 2.f},
                 // Head dims 256 and an odd 12 (element-wise loads), F32 and F16 caches.
                 Case{1, 1, 8, 4, 256, 300, 260}, Case{1, 2, 6, 2, 12, 100, 77},
                 Case{2, 2, 8, 2, 128, 300, 200, DType::F32},
                 Case{1, 1, 4, 4, 256, 200, 150, DType::F32}, Case{1, 1, 8, 2, 64, 300, 250, DType::F16},
                 Case{1, 3, 6, 2, 12, 90, 60, DType::F32}})
    expect_matches_cpu(c);
}

// set_attention_cluster for one scope (the default back after it).
struct ClusterCap {
  int before = attention_cluster();
  explicit ClusterCap(int n) { set_attention_cluster(n); }
  ~ClusterCap() { set_attention_cluster(before); }
};

// Capacities past 512 keys with few rows: the keys of a row are split over
// several blocks (e.g. 1 row at capacity 4096: 8 splits of 512 keys), each
// writes its (max, sum, output) and the last combines. A wrong combine (a
// split dropped or weighted without its max) is off by far more than the
// tolerance, the more so with a peaked softmax (qscale 2).
TEST(CudaAttentionCached, SplitKeysMatchCpu) {
  QT_SKIP_WITHOUT_GPU();
  ClusterCap global(1);  // not in a cluster (ClusterSplitMatchesCpu)
  for (Case c : {Case{1, 1, 4, 1, 128, 4096, 4000, DType::BF16, 2.f},
                 Case{1, 1, 9, 3, 64, 2048, 1900, DType::BF16, 2.f},
                 Case{1, 1, 32, 32, 128, 2048, 1500}, Case{1, 1, 32, 8, 128, 3000, 2999, DType::BF16, 2.f},
                 Case{1, 1, 16, 2, 64, 1100, 599, DType::BF16, 2.f},  // two of the possible splits active
                 Case{1, 1, 16, 2, 64, 1100, 10},                     // one active: written without the combine
                 Case{2, 3, 8, 2, 64, 2048, 1500, DType::BF16, 2.f},  // Tq > 1 and batch > 1
                 Case{1, 4, 24, 2, 128, 1500, 1400}, Case{1, 2, 6, 2, 12, 700, 650, DType::BF16, 2.f},
                 Case{1, 1, 9, 3, 64, 2048, 1900, DType::F32, 2.f}, Case{1, 1, 8, 2, 128, 1100, 1000, DType::F16, 2.f}})
    expect_matches_cpu(c);
}

// Short contexts with few rows: a cluster of 2, 4 or 8 blocks shares a row's
// keys and combines in distributed shared memory (sm_90), with empty blocks
// where the keys are fewer than the blocks' passes (pos0 0: one key, seven
// empty blocks); 1 is one block a row. Each against the CPU, with a peaked
// softmax so that a part weighted without its max, or dropped, is far off.
TEST(CudaAttentionCached, ClusterSplitMatchesCpu) {
  QT_SKIP_WITHOUT_GPU();
  for (int n : {8, 4, 2, 1}) {
    ClusterCap cap(n);
    SCOPED_TRACE("cluster " + std::to_string(n));
    for (Case c : {Case{1, 1, 32, 32, 128, 256, 191, DType::BF16, 2.f}, Case{1, 1, 32, 32, 128, 256, 0},
                   Case{1, 1, 32, 32, 128, 1024, 700, DType::BF16, 2.f}, Case{1, 1, 9, 3, 64, 256, 130, DType::BF16, 2.f},
                   Case{8, 1, 9, 3, 64, 256, 191, DType::BF16, 2.f}, Case{1, 1, 32, 8, 128, 256, 17, DType::BF16, 2.f},
                   Case{1, 3, 24, 2, 64, 300, 250, DType::BF16, 2.f}, Case{1, 2, 6, 2, 12, 100, 77, DType::BF16, 2.f},
                   Case{1, 1, 8, 2, 128, 300, 250, DType::F32, 2.f}, Case{1, 1, 8, 2, 64, 300, 5, DType::F16, 2.f},
                   Case{1, 1, 4, 1, 128, 4096, 4000, DType::BF16, 2.f}})  // 8: ~500 keys (4 tiles) a block
      expect_matches_cpu(c);
    // LLaMA-7B at batch 1 (32 rows on 132 SMs or so): split n ways in a cluster, or one block a row.
    expect_matches_cpu(Case{1, 1, 32, 32, 128, 256, 100});
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    int want = 1;  // two blocks a SM for one head a block
    while (want * 2 <= n && 32 * want * 2 <= 2 * sms) want *= 2;
    const AttentionSplit split = last_attention_split();
    EXPECT_EQ(split.blocks, want);
    EXPECT_EQ(split.cluster, want > 1);
  }
}

// A decode step captured once and replayed at other positions (pos_dev), in
// any order: the grid is fixed at capture and the blocks' key ranges follow
// the position. Over a capacity that splits the keys in global memory, each
// replay must leave the split counters ready for the next (a stale counter
// leaves the previous replay's output, which the next position's reference
// does not match); over a short one the keys are split in a cluster.
TEST(CudaAttentionCached, GraphReplaysAtDevicePositions) {
  QT_SKIP_WITHOUT_GPU();
  for (const int64_t cap : {3000, 300}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    ClusterCap cluster(cap > 1000 ? 1 : 8);
    const int64_t B = 1, Tq = 2, Hq = 8, Hkv = 2, D = 128;
    Pair q = randn_pair({B, Tq, Hq, D}, 4, DType::BF16, 2.f);
    Pair kc = randn_pair({B, cap, Hkv, D}, 5, DType::BF16), vc = randn_pair({B, cap, Hkv, D}, 6, DType::BF16);
    Pair out = pair(Tensor::zeros({B, Tq, Hq, D}, DType::F32), DType::BF16);
    Tensor pos = Tensor::zeros({1}, DType::I32, Device::CUDA);
    auto set_pos = [&](int32_t p) { cuda_copy(pos.raw(), &p, sizeof p, 0); };
    const SeqPos dev(1, pos.i32(), int(cap));  // `first` deliberately wrong: the kernel reads the device value
    set_pos(int32_t(cap * 2 / 3));
    attention_cached(out.gpu, q.gpu, kc.gpu, vc.gpu, dev);  // eager first: sizes the scratch the graph bakes in
    CudaGraph graph;
    graph.begin_capture();
    attention_cached(out.gpu, q.gpu, kc.gpu, vc.gpu, dev);
    std::string why;
    ASSERT_TRUE(graph.end_capture(&why)) << why;
    for (int p : {2000, 2998, 5, 1300, 600, 2998}) {
      p = int(p * (cap - 2) / 2998);  // the same places in a shorter cache
      SCOPED_TRACE("position " + std::to_string(p));
      set_pos(p);
      graph.replay();
      attention_cached(out.cpu, q.cpu, kc.cpu, vc.cpu, p);
      EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
    }
  }
}

}  // namespace
}  // namespace qtrain::testing
