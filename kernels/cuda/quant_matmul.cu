// CUDA twins of kernels/quant_matmul.h: dequantization of packed NF4/FP4
// (bitsandbytes layout, double-quantized absmax decoded on the fly) and int8
// rows into F32/BF16, and a one-pass 4-bit GEMV for decode-sized batches.
// Element decoding is kernels/quant/decode.h, shared with the CPU reference:
// the F32 values are identical, BF16 is their round to nearest even.
//
// Roofline: dequantization reads 0.5 (+1/64 absmax) bytes and writes 2 bytes
// per weight, so it is bound by the BF16 write; the GEMV reads ~0.52 bytes per
// weight once and is bound by DRAM bandwidth at M <= 16.

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/swiglu.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/device.h"
#include "kernels/cuda/context.cuh"
#include "kernels/matmul.h"
#include "kernels/quant_matmul.h"
#include "kernels/quant/decode.h"
#include "kernels/quant/dynamic_map.h"

namespace qtrain::cuda {
namespace {

// The weight as the kernels see it: quant::Nf4View (kernels/quant/nf4_view.h),
// the same view the CPU reference decodes, passed by value.
using Q4View = quant::Nf4View;

// The 16 code values and the 256-entry dynamic map in shared memory: indices
// differ per lane, which constant memory would serialize.
struct Tables {
  float code[16];
  float map[256];
};

__device__ void load_tables(Tables& t, const Q4View& a, const float* map) {
  // Constant indices only: a run-time index into the kernel parameter a.code
  // makes the compiler copy the whole view to the stack (136 bytes per thread)
  // and read every field of it from local memory in the hot loops.
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < 16; ++i) t.code[i] = a.code[i];
  }
  if (a.dq)
    for (int i = threadIdx.x; i < 256; i += blockDim.x) t.map[i] = map[i];
  __syncthreads();
}

__device__ __forceinline__ float block_absmax(const Q4View& a, const Tables& t, int64_t blk) {
  return a.block_absmax(blk, t.map);  // the map from shared memory
}

// Any offset, any out dtype: one element per thread.
__global__ void dequant4_kernel(FloatPtr out, Q4View a, const float* map, int64_t e0, int64_t n) {
  __shared__ Tables t;
  load_tables(t, a, map);
  QT_GRID_STRIDE(k, n) {
    const int64_t i = e0 + k;
    out.st(k, t.code[quant::nibble(a.packed, i)] * block_absmax(a, t, i / a.blocksize));
  }
}

// BF16 out, e0 % 8 == 0, blocksize % 8 == 0, out 16-byte aligned: 8 weights
// (4 packed bytes, one absmax block) per thread and one 16-byte store.
__global__ void dequant4_bf16x8_kernel(bf16* out, Q4View a, const float* map, int64_t e0, int64_t n8) {
  __shared__ Tables t;
  load_tables(t, a, map);
  QT_GRID_STRIDE(v, n8) {
    const int64_t i = e0 + v * 8;
    const uint32_t bytes = *reinterpret_cast<const uint32_t*>(a.packed + i / 2);
    const float am = block_absmax(a, t, i / a.blocksize);
    int4 raw;
    bf16* e = reinterpret_cast<bf16*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t b = (bytes >> (8 * j)) & 0xFF;  // little-endian: byte j of the four
      e[2 * j] = __float2bfloat16_rn(t.code[b >> 4] * am);
      e[2 * j + 1] = __float2bfloat16_rn(t.code[b & 0xF] * am);
    }
    reinterpret_cast<int4*>(out)[v] = raw;
  }
}

// CUDA-core GEMV (the earlier kernel, kept for comparison: set_gemv4_kernel).
// y[m, row] = sum_c x[m, c] * W[row, c]: a warp per output row; a lane takes
// 32 weights (16 packed bytes, inside one 64-block since cols % 64 == 0) per
// load, decodes them once and uses them for every row of x.
//
// Why it is shaped so (it is a pure DRAM stream, ~0.52 B per weight): every
// lane first issues all of its loads for a chunk of LOADS x 16 bytes, plus
// their absmax codes, and only then waits on the shared-table setup, so one
// DRAM latency per chunk is paid instead of one per load and the table loads
// hide behind it. Weights are streamed (evict-first: ld.global.cs) so that L1
// keeps x, which every warp of the block re-reads.
template <int MT, int LOADS>
__global__ void __launch_bounds__(256) gemv4_simt_kernel(FloatPtr y, const bf16* x, int M, Q4View a, const float* map,
                                                    int64_t rows, int64_t cols) {
  __shared__ Tables t;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + warp;
  const bool live = row < rows;
  const int64_t n16 = cols / 32;  // 16-byte packed loads per row
  const uint8_t* prow = a.packed + (live ? row : 0) * cols / 2;
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.f;
  bool tables = false;
  for (int64_t base = 0; base < n16; base += 32 * LOADS) {  // trip count is the same for the whole block
    int4 raw[LOADS];
    float am_or_a2[LOADS];
    int qa[LOADS];
#pragma unroll
    for (int j = 0; j < LOADS; ++j) {
      const int64_t c = base + j * 32 + lane;
      raw[j] = make_int4(0, 0, 0, 0);
      am_or_a2[j] = 0.f;
      qa[j] = 0;
      if (live && c < n16) {
        raw[j] = __ldcs(reinterpret_cast<const int4*>(prow) + c);
        const int64_t blk = (row * cols + c * 32) / 64;
        if (a.dq) {
          qa[j] = a.qabsmax[blk];
          am_or_a2[j] = a.absmax2[blk / 256];
        } else {
          am_or_a2[j] = a.absmax[blk];
        }
      }
    }
    if (!tables) {  // block-uniform: every thread reaches the barrier inside
      load_tables(t, a, map);
      tables = true;
    }
#pragma unroll
    for (int j = 0; j < LOADS; ++j) {
      const int64_t c = base + j * 32 + lane;
      if (!live || c >= n16) continue;
      const float am = a.dq ? quant::dq_absmax(t.map[qa[j]], am_or_a2[j], a.offset) : am_or_a2[j];
      // The 32 weights share one absmax: dot the codes with x, scale once.
      const uint32_t words[4] = {uint32_t(raw[j].x), uint32_t(raw[j].y), uint32_t(raw[j].z), uint32_t(raw[j].w)};
      float w[32];
#pragma unroll
      for (int e = 0; e < 16; ++e) {
        const uint32_t byte = (words[e / 4] >> (8 * (e % 4))) & 0xFF;  // little-endian byte e
        w[2 * e] = t.code[byte >> 4];
        w[2 * e + 1] = t.code[byte & 0xF];
      }
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= M) break;
        const int4* xr = reinterpret_cast<const int4*>(x + int64_t(m) * cols + c * 32);
        float dot = 0.f;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int4 xv = __ldg(xr + q);
          const uint32_t xw[4] = {uint32_t(xv.x), uint32_t(xv.y), uint32_t(xv.z), uint32_t(xv.w)};
#pragma unroll
          for (int k = 0; k < 4; ++k) {  // bf16 -> f32 is a 16-bit shift
            dot += __uint_as_float(xw[k] << 16) * w[8 * q + 2 * k];
            dot += __uint_as_float(xw[k] & 0xFFFF0000u) * w[8 * q + 2 * k + 1];
          }
        }
        acc[m] += am * dot;
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m >= M) break;
    const float s = warp_sum(acc[m]);
    if (lane == 0) y.st(int64_t(m) * rows + row, s);
  }
}

// ---------------------------------------------------------------------------
// Tensor-core 4-bit GEMV / skinny GEMM for M <= 16 (decode): y = x W^T with
// mma.sync m16n8k16 (bf16 in, f32 accumulate). 16 rows of W are the mma's A
// (its 16 rows), x^T is B (its 8 columns are x rows; M <= 8 uses one mma per
// 16 k, M <= 16 two with the same A), and one mma covers 16 k of one
// 64-weight absmax block.
//
// Why it is shaped so. The weight stream is ~0.52 B per weight, so at DRAM
// speed an SM must decode ~30 weights per clock. A CUDA-core decode spends
// ~4 instructions and a shared-memory lookup per weight and re-reads x per
// weight; here one lookup in a [byte][lane] table of bf16 pairs decodes two
// weights straight into an A register (conflict-free: the lane picks the
// bank), the tensor core does the multiply-adds for all M rows at once, and
// each block absmax scales the f32 accumulator once per 64 weights of a row.
// W as A (not B) matters: A's rows g and g + 8 are this lane's own two rows,
// so the absmax needs no shuffles, and x's fragment is two consecutive words
// of one 16-byte load, so no register moves feed the mma.
//
// k order: a lane's 8 packed bytes of a row (16 consecutive weights) are
// split over the 4 mmas of the block so that each A register is one byte's
// two codes; B (x) uses the same permutation, which is again contiguous pairs
// of x, so the dot product is unchanged:
//   mma j, lane (g = lane/4, t = lane%4): logical k {2t, 2t+1} -> 16t + 4j + {0,1},
//                                          logical k {2t+8, 2t+9} -> 16t + 4j + {2,3}.
// Work split: a block owns 16 rows of W at a time, its 8 warps stride over
// the 64-wide k-tiles (balanced to one tile), each warp issues the loads of
// kUnroll k-tiles before using any, and the partial sums meet in shared
// memory in a fixed order (deterministic).
//
// Measured (H200, bench_quant_kernels, 2026-12-01): see bench/results and
// kernels/cuda/README.md. ncu of the previous layout (W as B): DRAM 13% busy,
// issue ~45%, top stall long-scoreboard: each warp has only 2-3 rounds of
// loads and waits out each.
// Tried on 2026-12-04 and measured slower (bench/results/quant_kernels_NVIDIA-H200_2026-12-04*.json):
//   - a TMA pipeline (one producer thread, cp.async.bulk of each row's 2 KB into an 8-stage ring,
//     16 consumer warps, W as B in 8-row groups, persistent blocks): 11.7 us vs 7.5 us at 4096x4096
//     M = 1. ncu: DRAM 14% busy, consumers spinning on the full barrier, 1.1 eligible warps per
//     scheduler: the 1D bulk copies did not keep enough bytes in flight per SM;
//   - kUnroll 8 here (one round of loads per 4096-column group): 7.55 / 19.8 / 17.9 us on the three
//     LLaMA shapes vs 7.5 / 18.1 / 16.8 with 4.
// The same-size ceiling (a read-only kernel of the packed bytes, launch included) is 3.8 / 7.3 /
// 7.3 us: this kernel is at 37-50% of it. Next to try: lanes loading 16 contiguous bytes of one
// row (whole 512-byte runs per warp load, as the read kernel does; today a warp load touches 16
// rows x 32 bytes) and redistributing to the mma fragments through shared memory or shuffles.
constexpr int kMmaWarps = 8;  // 16 (more warps per row group) measured slower on the H200
constexpr int kMmaRows = 16;  // rows of W per block pass = the mma's 16 A rows

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t word_of(const int4& v, int i) {
  return uint32_t(i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w);
}

__device__ __forceinline__ uint32_t bf16_bits(float v) {
  return uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(v)));
}

// The table of bf16 pairs: a 256-byte row per byte value, this lane's copy at 4 lane (the rows'
// upper halves are unused). The row stride is a byte so that one PRMT makes the address: byte k of
// `word` above the lane's offset, (byte << 8) | 4 lane, then the load (conflict-free: the lane
// picks the bank). A 128-byte row took a shift and two LOP3s (ptxas did not fuse the OR), so the
// lookups were 4 instructions per two weights, most of this kernel's issue slots.
constexpr int kPairRowWords = 64;
__device__ __forceinline__ uint32_t lookup_pair(const char* tab, uint32_t word, int k, uint32_t lane4) {
  const uint32_t off = __byte_perm(word, lane4, 0x5504u | uint32_t(k) << 4);  // bytes: lane4, word[k], 0, 0
  return *reinterpret_cast<const uint32_t*>(tab + off);
}

// Up to kGemv4MaxShared weights with the same input in one launch (q/k/v,
// gate/up at decode: matmul_4bit_shared): one grid over all their 16-row
// groups, so the launch, the table build and the last wave's tail are paid
// once, and the grid is full where one 4096-row weight leaves SMs idle. One
// weight is the set of one. Each part is what the hot loop reads of its
// weight; the 16 code values are shared (the launcher checks).
struct Gemv4Part {
  const uint8_t* packed;
  const float* absmax;    // no double quant
  const uint8_t* qabsmax;  // double quant
  const float* absmax2;
  FloatPtr y;
  float offset;
  uint32_t rows, first;  // first = the part's first group in the grid's numbering
  bool dq;
};
struct Gemv4Set {
  Gemv4Part p0, p1, p2;  // named, not an array: a run-time index into a kernel parameter copies it to the stack
  uint32_t groups;       // all parts' groups
  bool any_dq;
  float code[16];
};
static_assert(kGemv4MaxShared == 3, "Gemv4Set holds three parts");

// The part a group belongs to, field by field with constant member names (see Gemv4Set).
__device__ __forceinline__ Gemv4Part part_of(const Gemv4Set& s, uint32_t grp) {
  const int i = int(grp >= s.p1.first) + int(grp >= s.p2.first);
  Gemv4Part p;
#define QT_PICK(f) p.f = i == 0 ? s.p0.f : i == 1 ? s.p1.f : s.p2.f
  QT_PICK(packed);
  QT_PICK(absmax);
  QT_PICK(qabsmax);
  QT_PICK(absmax2);
  QT_PICK(y.p);
  QT_PICK(y.t);
  QT_PICK(offset);
  QT_PICK(rows);
  QT_PICK(first);
  QT_PICK(dq);
#undef QT_PICK
  return p;
}

// The shared-memory tables of both tensor-core GEMVs: the 16 code values, the
// dynamic map (double quant) and the [byte][lane] table of bf16 pairs.
struct Gemv4Smem {
  uint32_t* pairs;  // [256 bytes][kPairRowWords]: bf16x2 (code[hi], code[lo]) for lanes 0..31
  float* dqmap;     // [256]
  float* red;       // [warps][32 lanes][4 * NB]: the partial sums of a group
};

__device__ __forceinline__ Gemv4Smem gemv4_smem(uint32_t* smem) {
  float* dqmap = reinterpret_cast<float*>(smem + 256 * kPairRowWords);
  return {smem, dqmap, dqmap + 256};
}

// This thread's entry of the dynamic map (double quant), loaded by the caller before anything else:
// ncu of the streamed kernel (H100, session 26) found 13% of its stall samples on the map's store into
// shared memory, waiting for this load, which then went out after the first step's weights.
__device__ __forceinline__ float gemv4_map_entry(const Gemv4Set& set, const float* map) {
  return set.any_dq && threadIdx.x < 256 ? __ldg(map + threadIdx.x) : 0.f;
}

// map_entry: gemv4_map_entry's value, stored after the pair table is built, so that its load's latency
// hides behind the build; store_map false leaves it to the caller (gemv4_stage_x: after the PDL wait).
__device__ void gemv4_build_tables(const Gemv4Set& set, float map_entry, const Gemv4Smem& sm, float* code,
                                   bool store_map = true) {
  const int lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {  // constant indices into the kernel parameter (see load_tables)
#pragma unroll
    for (int i = 0; i < 16; ++i) code[i] = set.code[i];
  }
  __syncthreads();
  // Entry e = byte value; each 256-thread slice of the block writes its share of the 32 lane
  // copies. The rotation by lane keeps the stores conflict-free.
  constexpr int kCopies = 32 / (kMmaWarps * 32 / 256);
  const int e = threadIdx.x & 255, r0 = (threadIdx.x >> 8) * kCopies;
  const uint32_t v = bf16_bits(code[e >> 4]) | (bf16_bits(code[e & 15]) << 16);
#pragma unroll 8
  for (int r = r0; r < r0 + kCopies; ++r) sm.pairs[e * kPairRowWords + ((r + lane) & 31)] = v;
  if (store_map && set.any_dq && threadIdx.x < 256) sm.dqmap[threadIdx.x] = map_entry;
  __syncthreads();
}

// x's fragment of one k-tile for B columns g (and g + 8): the 16 values of x row g (+ 8) at the lane's
// chunk, xt[h] pointing at them. Rows past M are not loaded: their registers keep what they held (zeros
// from the kernel's start, or an earlier tile's values), and the D columns they feed are never stored,
// so there is no zeroing per tile. The caller steps xt by immediates from a pointer made once per step.
template <int NB>
__device__ __forceinline__ void gemv4_load_x(int4 (&xv)[NB][2], const bf16* const (&xt)[NB], int M, int g) {
#pragma unroll
  for (int h = 0; h < NB; ++h)
    if (g + 8 * h < M) {
      xv[h][0] = __ldg(reinterpret_cast<const int4*>(xt[h]));
      xv[h][1] = __ldg(reinterpret_cast<const int4*>(xt[h]) + 1);
    }
}

// One 64-weight k-tile of this lane's rows g and g + 8 (8 packed bytes each, wq0 / wq1) against x's
// fragment xv (gemv4_load_x): c[h] = the tile's unscaled dot products (4 mmas).
template <int NB>
__device__ __forceinline__ void gemv4_tile(float (&c)[NB][4], uint2 wq0, uint2 wq1, const int4 (&xv)[NB][2],
                                           const char* tab, uint32_t lane4) {
  // One accumulator chain, four mmas deep: the FADDs that summed two chains of two were 4 of a tile's
  // ~110 instructions, and the unrolled tiles of a step interleave their chains.
#pragma unroll
  for (int h = 0; h < NB; ++h)
#pragma unroll
    for (int i = 0; i < 4; ++i) c[h][i] = 0.f;
#pragma unroll
  for (int mm = 0; mm < 4; ++mm) {
    // Bytes 2mm and 2mm + 1 of the lane's 8 in rows g and g + 8.
    const int k0 = 2 * (mm % 2);
    const uint32_t w0 = mm < 2 ? wq0.x : wq0.y, w1 = mm < 2 ? wq1.x : wq1.y;
    const uint32_t a0 = lookup_pair(tab, w0, k0, lane4), a2 = lookup_pair(tab, w0, k0 + 1, lane4);
    const uint32_t a1 = lookup_pair(tab, w1, k0, lane4), a3 = lookup_pair(tab, w1, k0 + 1, lane4);
#pragma unroll
    for (int h = 0; h < NB; ++h)
      mma_bf16_16816(c[h], a0, a1, a2, a3, word_of(xv[h][mm / 2], k0), word_of(xv[h][mm / 2], k0 + 1));
  }
}

// What the streamed kernel writes of a group (its kY parameter): the products, or SwiGLU of them
// (add_rmsnorm_matmul_4bit_swiglu: a group is 8 rows of gate as its A rows 0..7 and the same 8 rows of
// up as rows 8..15, and y = silu(gate) * up, [M, rows]).
// kYRopeKv: the set is {q, k, v} of a decode step (add_rmsnorm_matmul_4bit_rope_kv): q's and k's groups
// are 8 rows i of a head and the 8 rows i + D/2 that RoPE pairs with them, rotated at the step's
// position (q stored, k stored and appended to the cache), and v's rows are stored and appended too.
enum : int { kYProducts = 0, kYSwiglu = 1, kYRopeKv = 2 };
struct Gemv4Rope {
  const float2* table;     // rope_table's (cos, sin) at entry pos * D/2 + i
  const int32_t* pos_dev;  // the position of a replayed step (else pos0)
  bf16 *kc, *vc;           // [B, Tc, Hkv, D]
  int pos0, T, Tc, D;      // x row m is token m % T of batch row m / T, at position pos0 + m % T
};
// A RoPE group's first row: its head's, plus 8 rows for each group before it in the head (rows r
// D/2 on for the group's upper half).
__device__ __forceinline__ uint32_t rope_row0(uint32_t j, int r, uint32_t D) {
  const uint32_t per_head = D / 16;
  return j / per_head * D + j % per_head * 8 + uint32_t(r) * (D / 2);
}

// The group's outputs from every warp's accumulators: a fixed-order sum over the warps (deterministic);
// thread i < 128 NB owns (lane, element) i. Every thread of the block calls it.
// H0: acc[h] holds x rows 8 (h + H0) onward (the ring kernel reduces its two halves in turn).
// kY == kYSwiglu: n0 is the group's first row of gate and of up (NB 1).
// kY == kYRopeKv: part is 0 (q), 1 (k) or 2 (v) and, for q and k, n0 the group's index in its part.
template <int NB, int H0 = 0, int kY = kYProducts>
__device__ __forceinline__ void gemv4_reduce(const float (&acc)[NB][4], float* red, int M, uint32_t n0, uint32_t rows,
                                             FloatPtr y, int part = 0, const Gemv4Rope& rope = {}) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int h = 0; h < NB; ++h)
    reinterpret_cast<float4*>(red)[(warp * NB + h) * 32 + lane] = make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
  __syncthreads();
  if (threadIdx.x < 128 * NB) {
    const int i = threadIdx.x & 3, l = (threadIdx.x >> 2) & 31, h = threadIdx.x >> 7;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) sum += red[((w * NB + h) * 32 + l) * 4 + i];
    // D element i of lane l: W row (l/4) + 8 (i/2), x row 2 (l%4) + (i%2) (+ 8 h)
    const int m = 2 * (l & 3) + (i & 1) + 8 * (h + H0);
    if constexpr (kY == kYSwiglu) {
      static_assert(NB == 1 && H0 == 0, "SwiGLU epilogue: M <= 8");
      // Thread t holds gate (i < 2) or up (i >= 2) of row n0 + l/4 for x row m; thread t ^ 2 the other.
      // Each rounded as the product's own BF16 store rounds it, then swiglu_forward's math.
      const float v = __bfloat162float(__float2bfloat16_rn(sum));
      const float other = __shfl_xor_sync(0xffffffffu, v, 2);
      const int64_t n = int64_t(n0) + (l >> 2);
      if (i < 2 && m < M) y.st(int64_t(m) * rows + n, swiglu_value(v, other));
    } else if constexpr (kY == kYRopeKv) {
      static_assert(NB == 1 && H0 == 0, "RoPE epilogue: M <= 8");
      // Rounded as the product's own BF16 store rounds it; q and k then rotated as rope_append_kv
      // rotates them (thread t ^ 2 holds the pair's other row), each row also to the cache where
      // rope_append_kv appends it.
      float v = __bfloat162float(__float2bfloat16_rn(sum));
      const int hi = i >> 1;
      const int pos = (rope.pos_dev ? *rope.pos_dev : rope.pos0) + m % rope.T;
      uint32_t n;
      if (part < 2) {  // block-uniform
        const float other = __shfl_xor_sync(0xffffffffu, v, 2);
        n = rope_row0(n0, hi, uint32_t(rope.D)) + (l >> 2);
        const float2 cs = rope.table[int64_t(pos) * (rope.D / 2) + n % uint32_t(rope.D) % uint32_t(rope.D / 2)];
        const float2 rot = hi ? rope_rotate(other, v, cs.x, cs.y) : rope_rotate(v, other, cs.x, cs.y);
        v = hi ? rot.y : rot.x;
      } else {
        n = n0 + (l >> 2) + 8 * hi;
      }
      if (m < M && n < rows) {
        y.st(int64_t(m) * rows + n, v);
        if (part > 0) (part == 1 ? rope.kc : rope.vc)[(int64_t(m / rope.T) * rope.Tc + pos) * rows + n] = __float2bfloat16_rn(v);
      }
    } else {
      const int64_t n = int64_t(n0) + (l >> 2) + 8 * (i >> 1);
      if (m < M && n < int64_t(rows)) y.st(int64_t(m) * rows + n, sum);
    }
  }
  __syncthreads();
}

template <bool M16, int kUnroll, int kMinBlocks>
__global__ void __launch_bounds__(kMmaWarps * 32, kMinBlocks)
    gemv4_mma_kernel(Gemv4Set set, const bf16* x, int M, const float* map, int64_t cols) {
  constexpr int NB = M16 ? 2 : 1;  // mmas per 16 k: x rows 0..7 and 8..15
  extern __shared__ uint32_t smem[];
  const Gemv4Smem sm = gemv4_smem(smem);
  __shared__ float code[16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const float map_entry = gemv4_map_entry(set, map);  // first: see gemv4_map_entry
  const int64_t ktiles = cols / 64, groups = set.groups;
  // Launched with PDL (launch_gemv4_mma), this runs while the kernel before it
  // finishes, up to pdl_wait() below: the weight prefetch and the table touch
  // only frozen data. The next decode product may start its own preamble now.
  pdl_launch_dependents();

  // Start the first group's weights on their way to L2 while the tables fill.
  if (blockIdx.x < groups) {
    const Gemv4Part a = part_of(set, blockIdx.x);
    const int64_t rows = a.rows, n0 = int64_t(blockIdx.x - a.first) * kMmaRows;
    const int64_t bytes = ((n0 + kMmaRows < rows ? n0 + kMmaRows : rows) - n0) * cols / 2;
    const char* base = reinterpret_cast<const char*>(a.packed + n0 * cols / 2);
    for (int64_t off = int64_t(threadIdx.x) * 128; off < bytes; off += int64_t(blockDim.x) * 128)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(base + off));
  }
  gemv4_build_tables(set, map_entry, sm, code);
  pdl_wait();  // x is the previous kernel's output, and y may be what it reads

  // Index math is 32-bit offsets from the (uniform) base pointers: the
  // launcher checks rows * cols < 2^32, and blocksize is 64, so a k-tile is
  // one absmax block and no 64-bit division or pointer arithmetic is needed.
  const uint32_t ktiles32 = uint32_t(ktiles), kblocks = uint32_t(cols / 64), half_cols = uint32_t(cols / 2);
  const char* tab = reinterpret_cast<const char*>(sm.pairs);
  const uint32_t lane4 = 4u * lane;  // this lane's column of the table
  for (int64_t grp = blockIdx.x; grp < groups; grp += gridDim.x) {
    const Gemv4Part a = part_of(set, uint32_t(grp));
    const uint32_t rows = a.rows;
    const bool dq = a.dq;
    const float offset = a.offset;
    const uint32_t n0 = uint32_t(grp - a.first) * kMmaRows;
    // This lane's A rows g and g + 8. Rows past the end read the last row:
    // their outputs are computed and never stored.
    uint32_t woff[2], blk0[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint32_t n = n0 + 8 * r + g < rows ? n0 + 8 * r + g : uint32_t(rows - 1);
      woff[r] = n * half_cols + 8 * t4;
      blk0[r] = n * kblocks;
    }
    uint32_t xoff[NB];  // this lane's B column: x row g (and g + 8)
#pragma unroll
    for (int h = 0; h < NB; ++h) xoff[h] = uint32_t(g + 8 * h) * uint32_t(cols) + 16 * t4;
    float acc[NB][4] = {};
    int4 xv[NB][2] = {};  // see gemv4_load_x
    for (uint32_t kt0 = warp; kt0 < ktiles32; kt0 += kMmaWarps * kUnroll) {
      // The weight loads of kUnroll k-tiles go out before any is used; x (a
      // few KB that every warp reads, so an L1 hit) is loaded where it is used.
      uint2 wq[kUnroll][2];
      float am[kUnroll][2];  // absmax, or absmax2 with the code in qa (double quant)
      uint32_t qa[kUnroll][2];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const uint32_t kt = kt0 + j * kMmaWarps;
        if (kt >= ktiles32) break;  // warp-uniform
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          wq[j][r] = __ldcs(reinterpret_cast<const uint2*>(a.packed + (woff[r] + 32 * kt)));
          const uint32_t blk = blk0[r] + kt;
          if (dq) {
            qa[j][r] = a.qabsmax[blk];
            am[j][r] = __ldg(a.absmax2 + (blk >> 8));
          } else {
            qa[j][r] = 0;
            am[j][r] = __ldg(a.absmax + blk);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const uint32_t kt = kt0 + j * kMmaWarps;
        if (kt >= ktiles32) break;  // warp-uniform
        float c[NB][4];
        const bf16* xt[NB];
#pragma unroll
        for (int h = 0; h < NB; ++h) xt[h] = x + (xoff[h] + 64 * kt);
        gemv4_load_x<NB>(xv, xt, M, g);
        gemv4_tile<NB>(c, wq[j][0], wq[j][1], xv, tab, lane4);
        const float s0 = dq ? quant::dq_absmax(sm.dqmap[qa[j][0]], am[j][0], offset) : am[j][0];  // row g
        const float s1 = dq ? quant::dq_absmax(sm.dqmap[qa[j][1]], am[j][1], offset) : am[j][1];  // row g + 8
#pragma unroll
        for (int h = 0; h < NB; ++h) {
          acc[h][0] += c[h][0] * s0;
          acc[h][1] += c[h][1] * s0;
          acc[h][2] += c[h][2] * s1;
          acc[h][3] += c[h][3] * s1;
        }
      }
    }
    gemv4_reduce<NB>(acc, sm.red, M, n0, rows, a.y);
  }
}

// The absmax codes of kTiles consecutive blocks as one load (byte j = block j).
template <int kTiles>
__device__ __forceinline__ void load_codes(const uint8_t* p, uint32_t (&w)[(kTiles + 3) / 4]) {
  if constexpr (kTiles == 8) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  } else if constexpr (kTiles == 4) {
    w[0] = __ldg(reinterpret_cast<const uint32_t*>(p));
  } else if constexpr (kTiles == 2) {
    w[0] = __ldg(reinterpret_cast<const uint16_t*>(p));
  } else {
    w[0] = __ldg(p);
  }
}

// How a step loads the absmax state of its tiles (the arithmetic is the same in each, so a weight's
// outputs do not depend on the set it is launched in):
//  - kWordCodes: double quant, blocks per row a multiple of kTiles: the kTiles codes of a row as
//    one word and one absmax2 (a step's blocks lie in one 256-block group);
//  - kF32Absmax: no double quant: one F32 absmax per tile;
//  - kPerTile: a set that mixes the two: code and scale per tile, double quant decided per part.
enum Gemv4Loads { kWordCodes, kF32Absmax, kPerTile };

// What one step of the streamed GEMV loads for a warp: kTiles adjacent k-tiles of the lane's rows g
// and g + 8, and their absmax state. From 2 tiles on, the weights go as pairs of tiles (64 bytes of a
// row): the lane loads its 16 contiguous bytes of each, so a warp load covers 64 bytes of each of 8
// rows instead of 32 (the 8 bytes per tile that the mma fragment wants), and gemv4_unpair trades
// halves with the lane two over to make the fragments.
template <int kTiles, int kLoads>
struct Gemv4Step {
  static constexpr bool kWide = kTiles >= 2;
  uint4 wp[kWide ? kTiles / 2 : 1][2];  // kWide: pair p of row g / g + 8, bytes [16 t4, 16 t4 + 16)
  uint2 w[kWide ? 1 : kTiles][2];       // otherwise: tile j of row g / g + 8, bytes [8 t4, 8 t4 + 8)
  uint32_t qa[2][kLoads == kWordCodes ? (kTiles + 3) / 4 : kLoads == kPerTile ? kTiles : 1];  // [row][word or tile]
  float am[kLoads == kWordCodes ? 1 : kTiles][2];  // absmax2 or absmax
};

// A pair of tiles (64 bytes of a row; tile lo = bytes 0..31, hi = 32..63) as lanes t4 = 0..3 load
// it, 16 bytes each, into each lane's 8 bytes of both tiles: lanes t4 and t4 ^ 2 swap a half.
// Lane t4 then holds chunk c = 2 (t4 & 1) + (t4 >> 1) (8 bytes, 16 weights) of each tile, so its x
// fragment is taken at 16 c instead of 16 t4 (gemv4_chunk): the same permutation of k for every
// row, and the dot products are unchanged.
__device__ __forceinline__ void gemv4_unpair(uint4 v, int t4, uint2& lo, uint2& hi) {
  const bool upper = t4 & 2;  // holds hi-tile bytes: keeps its upper 8, sends its lower 8
  const uint32_t s0 = upper ? v.x : v.z, s1 = upper ? v.y : v.w;
  const uint32_t r0 = __shfl_xor_sync(0xffffffffu, s0, 2), r1 = __shfl_xor_sync(0xffffffffu, s1, 2);
  lo = upper ? make_uint2(r0, r1) : make_uint2(v.x, v.y);
  hi = upper ? make_uint2(v.z, v.w) : make_uint2(r0, r1);
}
__device__ __forceinline__ int gemv4_chunk(int t4) { return ((t4 & 1) << 1) | (t4 >> 1); }

// x in the pair table's unused upper row halves (the lookups read bytes 0..127 of each 256-byte row):
// tile t of x row m (128 bytes) at row m ktiles + t, so it fits where M ktiles <= 256, which is LLaMA-7B's
// products at M = 1 (4096 or 11008 columns: 8 / 22 KB). Why: ncu of the streamed kernel (H100, session
// 26) put 13% of its stall samples on HMMAs waiting for x from global memory, the L1 hit rate at 34%
// (the weight stream passes through L1 too). Every thread of the block calls it, after pdl_wait. The
// dynamic map's entries are stored here too (gemv4_build_tables' store_map): with the table build alone
// to hide its load, that store was still 9% of the stall samples.
constexpr uint32_t kXSmemTiles = 256;
// Staging costs a block an L2 round trip and a barrier, so it is used where a block reads x for 128
// k-tiles or more (LLaMA-7B, M = 1: 4096 x 4096 alone, one group of 64 tiles a block, 5.45 -> 5.8 us
// with it; q+k+v as one set 14.4 -> 12.2, down 13.7 -> 11.3; H100, session 26).
bool gemv4_x_in_smem(int M, int64_t cols, int64_t groups, int64_t grid) {
  static const bool on = env_flag("QT_GEMV4_XSMEM", true);  // 0: x from global memory (for measuring)
  const int64_t ktiles = cols / 64, per_block = (groups + grid - 1) / grid;
  return on && int64_t(M) * ktiles <= kXSmemTiles && per_block * ktiles >= 128;
}

__device__ __forceinline__ void gemv4_stage_x(char* smem, const bf16* x, int M, int64_t cols, const Gemv4Set& set,
                                              float map_entry, float* dqmap) {
  constexpr int kPer = kXSmemTiles * 128 / 16 / (kMmaWarps * 32);  // 16-byte pieces a thread at most
  const uint32_t per_row = uint32_t(cols) / 8, pieces = uint32_t(M) * per_row, ktiles = uint32_t(cols) / 64;
  const int4* src = reinterpret_cast<const int4*>(x);
  int4 v[kPer];  // every load out before the first store: one L2 round trip, not kPer
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const uint32_t u = threadIdx.x + uint32_t(i) * kMmaWarps * 32;
    if (u < pieces) v[i] = __ldg(src + u);
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const uint32_t u = threadIdx.x + uint32_t(i) * kMmaWarps * 32;
    if (u >= pieces) break;
    const uint32_t m = u / per_row, b = (u - m * per_row) * 16;  // byte b of row m
    *reinterpret_cast<int4*>(smem + (((m * ktiles + (b >> 7)) << 8) + 128 + (b & 127))) = v[i];
  }
  if (set.any_dq && threadIdx.x < 256) dqmap[threadIdx.x] = map_entry;
  __syncthreads();
}

// The product's input made in the staging by the op that would otherwise run as its own kernel right
// before the GEMV: a decode layer's residual add and RMSNorm before q+k+v and gate+up (3.5 us a
// LLaMA-7B norm kernel, and a launch). Every block makes the whole input for itself; block 0 also
// stores it, rstd and the sum, for the ops that read them later: an unmerged adapter reads the input,
// the next residual add the sum. (SwiGLU made the same way before down measured slower: every block
// reading gate and up and taking 11008 exponentials cost the down GEMV 3.5 us against the 1.7 us
// SwiGLU kernel; bench/results/decode_tried_not_kept_NVIDIA-H100_2026-12-07_s27.txt.)
// (Named without "norm": kernel_class would file the GEMV, whose demangled name holds it, as a norm.)
struct Gemv4MadeX {
  const bf16* b;  // the residual r added to x (nullptr: none)
  FloatPtr w;     // the norm's weight, BF16 or F32 [cols]
  bf16* h;        // the made input [M, cols], stored by block 0
  bf16* sum;      // with r: x + r
  float* rstd;    // [M]
  float eps;
};
// Where the streamed kernel's x comes from (its kX parameter): global memory, or staged into shared
// memory as it is (gemv4_stage_x) or normalized (gemv4_stage_rms_x).
enum : int { kXGlobal = 0, kXShared = 1, kXRmsNorm = 2 };
constexpr int kNormPieces = 4;  // 16-byte pieces of a row a thread: rows of up to 8192 values

// A thread's 8 norm weights of the 16-byte piece at value c (the conversions are exact: w.ld's values):
// from wv, loaded beside x where the weight is BF16, else one by one.
__device__ __forceinline__ void gemv4_norm_weights(const FloatPtr& w, const int4& wv, uint32_t c, float (&f)[8]) {
  if (w.t == DType::BF16) {
    bf16x8_to_f32(wv, f);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) f[k] = w.ld(c + k);
  }
}

// h = rmsnorm(x + r) * w (add_rmsnorm_matmul_4bit_shared). Each block sums and normalizes x's M rows
// in norm.cu's row kernel's order (a thread's 16-byte pieces j * 256 + tid of a row, squares summed
// over j then the 8 values, then block_sum), so h and rstd are that kernel's bits.
__device__ __forceinline__ void gemv4_stage_rms_x(char* smem, const bf16* x, int M, int64_t cols,
                                                  const Gemv4Set& set, float map_entry, float* dqmap,
                                                  const Gemv4MadeX& nrm) {
  __shared__ float red[32];
  const uint32_t per_row = uint32_t(cols) / 8, ktiles = uint32_t(cols) / 64, tid = threadIdx.x;
  const bool writer = blockIdx.x == 0;
  for (int m = 0; m < M; ++m) {
    const uint32_t row0 = uint32_t(m) * per_row;  // the row's first piece
    int4 xv[kNormPieces], rv[kNormPieces], wv[kNormPieces];  // all loads out at once: one round trip
#pragma unroll
    for (int j = 0; j < kNormPieces; ++j) {
      const uint32_t u = uint32_t(j) * kMmaWarps * 32 + tid;
      if (u >= per_row) break;
      xv[j] = __ldg(reinterpret_cast<const int4*>(x) + row0 + u);
      if (nrm.b) rv[j] = __ldg(reinterpret_cast<const int4*>(nrm.b) + row0 + u);
      if (nrm.w.t == DType::BF16) wv[j] = __ldg(reinterpret_cast<const int4*>(nrm.w.p) + u);
    }
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < kNormPieces; ++j) {
      const uint32_t u = uint32_t(j) * kMmaWarps * 32 + tid;
      if (u >= per_row) break;
      float f[8];
      bf16x8_to_f32(xv[j], f);
      if (nrm.b) {  // each sum rounded to BF16, as add_inplace stores it (Vec::add_rounded)
        float g[8];
        bf16x8_to_f32(rv[j], g);
        uint32_t wd[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) wd[k] = bf16_bits(f[2 * k] + g[2 * k]) | bf16_bits(f[2 * k + 1] + g[2 * k + 1]) << 16;
        xv[j] = make_int4(int(wd[0]), int(wd[1]), int(wd[2]), int(wd[3]));
        bf16x8_to_f32(xv[j], f);
        if (writer) reinterpret_cast<int4*>(nrm.sum)[row0 + u] = xv[j];
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) ss += f[k] * f[k];
    }
    const float rstd = rsqrtf(block_sum(ss, red) / float(cols) + nrm.eps);
    if (writer && tid == 0) nrm.rstd[m] = rstd;
#pragma unroll
    for (int j = 0; j < kNormPieces; ++j) {
      const uint32_t u = uint32_t(j) * kMmaWarps * 32 + tid;
      if (u >= per_row) break;
      float f[8], w[8];
      bf16x8_to_f32(xv[j], f);
      gemv4_norm_weights(nrm.w, wv[j], u * 8, w);
      uint32_t wd[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) wd[k] = bf16_bits(f[2 * k] * rstd * w[2 * k]) | bf16_bits(f[2 * k + 1] * rstd * w[2 * k + 1]) << 16;
      const int4 hv = make_int4(int(wd[0]), int(wd[1]), int(wd[2]), int(wd[3]));
      const uint32_t b = u * 16;  // byte b of row m: gemv4_stage_x's layout
      *reinterpret_cast<int4*>(smem + (((uint32_t(m) * ktiles + (b >> 7)) << 8) + 128 + (b & 127))) = hv;
      if (writer) reinterpret_cast<int4*>(nrm.h)[row0 + u] = hv;
    }
  }
  if (set.any_dq && threadIdx.x < 256) dqmap[threadIdx.x] = map_entry;
  __syncthreads();
}

// Copies the set's parts into `parts` (shared memory; every thread of the block calls it) and returns
// the lookup of a group's part there.
__device__ __forceinline__ auto gemv4_parts_in_smem(Gemv4Part (&parts)[3], const Gemv4Set& set) {
  if (threadIdx.x == 0) parts[0] = set.p0;
  if (threadIdx.x == 1) parts[1] = set.p1;
  if (threadIdx.x == 2) parts[2] = set.p2;
  __syncthreads();
  const uint32_t first1 = set.p1.first, first2 = set.p2.first;
  return [&parts, first1, first2](uint32_t grp) -> const Gemv4Part& {
    return parts[int(grp >= first1) + int(grp >= first2)];
  };
}

// The streamed tensor-core GEMV: the same tiles, tables and reduction as gemv4_mma_kernel, with the
// work of a block flattened into steps (group, k-range): a warp's step is kTiles adjacent k-tiles
// (128 contiguous bytes of each of its rows at kTiles 4, a whole cache line per row), and the loads
// of step s + 1 go out before step s is computed, across group boundaries too, so a warp always has
// a step's loads in flight instead of draining the pipe at every unrolled batch and every group.
//
// Measured (bench_quant_kernels, H200, 2026-12-04; % of a read-only kernel of the same bytes, M 1):
// 4096x4096 46.8, 11008x4096 43.2, 4096x11008 40.8 (the batched kernel 44.1 / 38.9 / 38.4);
// LLaMA-7B NF4 decode 3.46 ms per token at batch 1 (3.73 before). ncu of the step before the
// parts moved to shared memory (11008x4096, M 1): issue 0.44 per scheduler, DRAM 28% busy, stalls
// per issued instruction: long scoreboard 4.6, wait 2.0, short scoreboard 1.4, LG throttle 1.0 —
// latency-bound with ~130 instructions per warp and k-tile (a third of them the step's loads and
// addresses). Tried and no faster: L2 prefetch of the step 2, 4 or 8 ahead (no registers held);
// 16-byte pair loads alone (64 bytes of a row per warp load instead of 32). Next: fewer steps
// per byte (8 tiles a step, 2 blocks per SM) and the x fragments loaded once per step.
// Session 26 (H100, bench_quant_kernels against the session-start build in the same call, M = 1):
// with x staged in shared memory (gemv4_stage_x), the dynamic map loaded first, and no division
// or 64-bit address math per step: gate/up 13.4 -> 11.2 us (61.7 -> 73.7% of copy), down 13.8 ->
// 11.6 (71%), the q+k+v set 14.3 -> 12.3, the gate+up set 25.1 -> 21.7; 4096 x 4096 alone 5.6 ->
// 5.5 (56%: one 64-tile group a block, x from global memory). ncu (gate/up) before -> after: L1
// hit rate 34 -> 13% (x no longer in it), issue 1.27 -> 1.49 per cycle, long-scoreboard stalls
// 37 -> 20% of the samples; bench/results/gemv4_stream_ncu_NVIDIA-H100_2026-12-07_s26.txt.
// kX: where x comes from (kXGlobal ...): past kXGlobal it sits in shared memory, in the pair table's
// unused upper row halves (see gemv4_stage_x), as it is or as made by an op (Gemv4MadeX).
// kY: what it writes (kYProducts ...); with kYSwiglu the set is {gate, up} of equal rows, a multiple of
// 8, and a group is 8 rows of each (gemv4_swiglu_set).
template <bool M16, int kTiles, int kLoads, int kMinBlocks, int kX = kXGlobal, int kY = kYProducts>
__global__ void __launch_bounds__(kMmaWarps * 32, kMinBlocks)
    gemv4_stream_kernel(Gemv4Set set, const bf16* x, int M, const float* map, int64_t cols, Gemv4MadeX made,
                        Gemv4Rope rope) {
  constexpr bool kXSmem = kX != kXGlobal;
  constexpr int NB = M16 ? 2 : 1;
  using Step = Gemv4Step<kTiles, kLoads>;
  extern __shared__ uint32_t smem[];
  const Gemv4Smem sm = gemv4_smem(smem);
  __shared__ float code[16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const float map_entry = gemv4_map_entry(set, map);  // first: see gemv4_map_entry
  const uint32_t ktiles = uint32_t(cols / 64), half_cols = uint32_t(cols / 2), groups = set.groups;
  const uint32_t its = (ktiles + kMmaWarps * kTiles - 1) / (kMmaWarps * kTiles);  // steps per group
  const uint32_t mine = blockIdx.x < groups ? (groups - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const uint32_t nsteps = mine * its;
  pdl_launch_dependents();  // see gemv4_mma_kernel
  // The parts in shared memory: a step reads its part's fields with a few LDS. part_of's selects on
  // the kernel parameter (run-time indexed constant loads) were ~40% of the instructions of a step.
  __shared__ Gemv4Part parts[3];
  const auto part = gemv4_parts_in_smem(parts, set);

  // Step s is (group blockIdx.x + (s / its) gridDim.x, it = s % its): this warp's tiles from
  // (it warps + warp) kTiles. Walked by a cursor each for the loads and the computing (a 32-bit
  // division per step was ~15 instructions).
  struct Cursor {
    uint32_t grp, it;
  };
  const auto next = [&](Cursor& c) {
    if (++c.it == its) c.it = 0, c.grp += gridDim.x;
  };
  // A row half r of a group: its part, and its first row (gate's and up's rows are the group's halves
  // with kYSwiglu, the part's 16 rows otherwise).
  const auto half_part = [&](const Gemv4Part& a, int r) -> const Gemv4Part& {
    return kY == kYSwiglu && r == 1 ? parts[1] : a;
  };
  const uint32_t first1 = set.p1.first, first2 = set.p2.first;
  const auto half_row0 = [&](const Gemv4Part& a, uint32_t grp, int r) {
    if constexpr (kY == kYRopeKv)
      if (grp < first2) return rope_row0(grp - a.first, r, uint32_t(rope.D));  // q and k: RoPE's pairs
    return kY == kYSwiglu ? (grp - a.first) * 8 : (grp - a.first) * kMmaRows + 8 * r;
  };
  const auto load = [&](Step& st, Cursor c) {
    const uint32_t grp = c.grp, base = (c.it * kMmaWarps + warp) * kTiles;
    if (base >= ktiles) return;  // warp-uniform: no tiles for this warp in this step
    const Gemv4Part& a0 = part(grp);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const Gemv4Part& a = half_part(a0, r);
      const uint32_t nr = half_row0(a0, grp, r) + g;
      const uint32_t n = nr < a.rows ? nr : a.rows - 1;  // rows past the end: never stored
      const uint32_t blk = n * ktiles + base;
      if constexpr (Step::kWide) {
        // One 64-bit address a row, the pairs at immediate offsets from it.
        const uint4* src = reinterpret_cast<const uint4*>(a.packed + (n * half_cols + 32 * base + 16 * t4));
#pragma unroll
        for (int p = 0; p < kTiles / 2; ++p) {
          // This lane's 16 bytes are tile 2p + t4/2's (past a ragged row's end: zeros, never used).
          st.wp[p][r] = make_uint4(0, 0, 0, 0);
          if (kLoads == kWordCodes || base + 2 * p + (t4 >> 1) < ktiles) st.wp[p][r] = __ldcs(src + 4 * p);
        }
      } else {
        const uint2* src = reinterpret_cast<const uint2*>(a.packed + (n * half_cols + 32 * base + 8 * t4));
#pragma unroll
        for (int j = 0; j < kTiles; ++j)
          if (kLoads == kWordCodes || base + j < ktiles) st.w[j][r] = __ldcs(src + 4 * j);
      }
      if constexpr (kLoads == kWordCodes) {
        load_codes<kTiles>(a.qabsmax + blk, st.qa[r]);
        st.am[0][r] = __ldg(a.absmax2 + (blk >> 8));
      } else {
#pragma unroll
        for (int j = 0; j < kTiles; ++j) {
          if (base + j >= ktiles) break;
          if constexpr (kLoads == kF32Absmax) {
            st.am[j][r] = __ldg(a.absmax + blk + j);
          } else {
            st.qa[r][j] = a.dq ? a.qabsmax[blk + j] : 0u;
            st.am[j][r] = __ldg(a.dq ? a.absmax2 + ((blk + j) >> 8) : a.absmax + blk + j);
          }
        }
      }
    }
  };

  Step s0, s1;
  Cursor cl{blockIdx.x, 0}, cc = cl;  // the next step to load, to compute
  // The first step's weights are frozen data: they may load before the previous kernel ends (PDL).
  if (nsteps > 0) load(s0, cl), next(cl);
  gemv4_build_tables(set, map_entry, sm, code, !kXSmem);
  pdl_wait();  // x is the previous kernel's output, and y may be what it reads
  if constexpr (kX == kXRmsNorm)
    gemv4_stage_rms_x(reinterpret_cast<char*>(smem), x, M, cols, set, map_entry, sm.dqmap, made);
  else if constexpr (kXSmem)
    gemv4_stage_x(reinterpret_cast<char*>(smem), x, M, cols, set, map_entry, sm.dqmap);

  const char* tab = reinterpret_cast<const char*>(sm.pairs);
  const uint32_t lane4 = 4u * lane;
  // kXSmem: this lane's x fragment of the step's first tile in shared memory (tile j: 256 j further).
  const char* const xsm0 = reinterpret_cast<const char*>(smem) + ((uint32_t(g) * ktiles) << 8) + 128 +
                           32 * (Step::kWide ? gemv4_chunk(t4) : t4);
  uint32_t xoff[NB];  // this lane's B column: x row g (and g + 8)
#pragma unroll
  for (int h = 0; h < NB; ++h) xoff[h] = uint32_t(g + 8 * h) * uint32_t(cols) + 16 * (Step::kWide ? gemv4_chunk(t4) : t4);
  float acc[NB][4] = {};
  int4 xv[NB][2] = {};  // see gemv4_load_x
  const auto compute = [&](const Step& st, Cursor c) {
    const uint32_t grp = c.grp, it = c.it, base = (it * kMmaWarps + warp) * kTiles;
    const Gemv4Part& a = part(grp);
    const bf16* xs[NB];  // the step's first tile of x rows g (+ 8); tile j is 64 j further (an immediate offset)
#pragma unroll
    for (int h = 0; h < NB; ++h) xs[h] = x + (xoff[h] + 64 * base);
    uint2 w[2][2];  // tile j (and j + 1 of its pair) of rows g and g + 8: this lane's 8 bytes of each
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      // Warp-uniform. With word-loaded codes a step's tiles are all there or none (kTiles divides the
      // row's tiles): no test per tile, so the tiles' lookups and mmas may interleave.
      if (kLoads == kWordCodes ? base >= ktiles : base + j >= ktiles) break;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if constexpr (Step::kWide) {
          if (j % 2 == 0) gemv4_unpair(st.wp[j / 2][r], t4, w[0][r], w[1][r]);  // a pair's raw bytes die here
        } else {
          w[j % 2][r] = st.w[j][r];
        }
      }
      float c[NB][4];
      if constexpr (kXSmem) {
        static_assert(NB == 1, "x in shared memory: M <= 8");
        if (g < M) {
          const int4* xp = reinterpret_cast<const int4*>(xsm0 + (base << 8) + 256 * j);
          xv[0][0] = xp[0], xv[0][1] = xp[1];
        }
      } else {
        const bf16* xt[NB];
#pragma unroll
        for (int h = 0; h < NB; ++h) xt[h] = xs[h] + 64 * j;
        gemv4_load_x<NB>(xv, xt, M, g);
      }
      gemv4_tile<NB>(c, w[j % 2][0], w[j % 2][1], xv, tab, lane4);
      float sc[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const Gemv4Part& ar = half_part(a, r);
        if constexpr (kLoads == kWordCodes)
          sc[r] = quant::dq_absmax(sm.dqmap[(st.qa[r][j / 4] >> (8 * (j % 4))) & 0xFFu], st.am[0][r], ar.offset);
        else if constexpr (kLoads == kF32Absmax)
          sc[r] = st.am[j][r];
        else
          sc[r] = ar.dq ? quant::dq_absmax(sm.dqmap[st.qa[r][j]], st.am[j][r], ar.offset) : st.am[j][r];
      }
#pragma unroll
      for (int h = 0; h < NB; ++h) {
        acc[h][0] += c[h][0] * sc[0];
        acc[h][1] += c[h][1] * sc[0];
        acc[h][2] += c[h][2] * sc[1];
        acc[h][3] += c[h][3] * sc[1];
      }
    }
    if (it == its - 1) {  // the group's last step: block-uniform
      if constexpr (kY == kYRopeKv) {
        const int pi = int(grp >= first1) + int(grp >= first2);
        gemv4_reduce<NB, 0, kY>(acc, sm.red, M, pi < 2 ? grp - a.first : half_row0(a, grp, 0), a.rows, a.y, pi, rope);
      } else {
        gemv4_reduce<NB, 0, kY>(acc, sm.red, M, half_row0(a, grp, 0), a.rows, a.y);
      }
#pragma unroll
      for (int h = 0; h < NB; ++h)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[h][i] = 0.f;
    }
  };
  // Two steps in registers: the next one's loads in flight while this one computes.
  for (uint32_t s = 0; s < nsteps; s += 2) {
    if (s + 1 < nsteps) load(s1, cl), next(cl);
    compute(s0, cc), next(cc);
    if (s + 1 < nsteps) {
      if (s + 2 < nsteps) load(s0, cl), next(cl);
      compute(s1, cc), next(cc);
    }
  }
}

// ---------------------------------------------------------------------------
// The ring GEMV (decode, M <= 16, double-quantized rows of 32 k-tiles or more in multiples of 4: see
// gemv4_ring): the streamed kernel's tiles, tables and reduction, with the weights brought by cp.async
// into a per-warp ring of kRingStages steps in shared memory instead of into registers two steps deep.
// Opt-in: correct, and on an H100 slower than the streamed kernel at most shapes (M = 1: 4096 x 4096 5.6 ->
// 6.8 us, 11008 x 4096 13.3 -> 13.9, 4096 x 11008 13.6 -> 14.8; faster only for the gate + up set, 25.0 ->
// 24.0, and at M = 16). ncu: the HMMAs wait on x (with 222 KB of shared memory the L1 that holds x is
// ~30 KB; L1 hit rate 39%) and the lookups queue on the shared-memory pipe; kernels/cuda/README.md.
//
// Why. At 75% of the copy bandwidth an SM must take in ~9 bytes a clock. The streamed kernel held one
// step (2 KB a warp) in flight while it computed the one before, and its SASS spent ~90 instructions
// a k-tile where the work is 16 PRMT + 16 LDS of table lookups and 4 HMMA: the rest was the 64-bit
// address of every load, the shuffles and selects that make two tiles' fragments of a 16-byte load, a
// 32-bit division per step and the absmax decode in every lane of a quad. Here:
//  - a warp keeps kRingStages - 1 steps in flight and holds no registers for them;
//  - a step lands in fragment order: tile j, row half (g, g + 8), then the 8 rows' 32-byte fragments,
//    so a lane's fragment of any tile of any stage is one LDS.64 at an immediate offset from one
//    per-lane address (conflict-free: a half warp reads 128 contiguous bytes), and a lane's four
//    16-byte copies of a step are immediate offsets from one source and one destination address
//    (each copy instruction covers whole 32-byte sectors of 16 rows);
//  - the step's absmax values are decoded once, two per lane, not once per lane of a quad;
//  - a warp's k-tiles of a group are one contiguous range, the 8 ranges equal to 2 tiles: LLaMA's
//    down projection (172 tiles a row) gives each warp 20-22 tiles where 4-tile steps dealt round
//    robin gave three warps 24 and the others 20 (the block waits for the last warp at every group).
//
// Shared memory (111 KB, so two blocks fit an SM): the pair table's rows are 256 bytes of which the
// lookups use the first 128 (one PRMT makes the address, see lookup_pair); their other halves hold
// stages 0 and 1 of every warp (8 warps x 2 stages x 16 pieces of 128 bytes = the table's 256 rows),
// and a region of 256-byte rows holds stages 2 and 3 (lower and upper half), so in every stage piece p
// is 256 p bytes from piece 0. Each step's code words and absmax2 values come by 4-byte cp.async
// beside it (kRingMeta).
constexpr int kRingTiles = 4;   // k-tiles a step at most: 128 packed bytes of each of the group's 16 rows
constexpr int kRingStages = 4;  // steps a warp has in flight or in use
constexpr uint32_t kRingPiece = 256;                                    // piece p of a stage: 256 p bytes on
constexpr uint32_t kRingMap = 256 * kPairRowWords * 4;                  // the pair table (64 KB), then the map (1 KB)
constexpr uint32_t kRingRed = kRingMap + 1024;                          // partial sums: [warps][32][4] floats
constexpr uint32_t kRingExtra = kRingRed + kMmaWarps * 32 * 4 * 4;      // stages 2, 3 (32 KB)
constexpr uint32_t kRingMeta = kRingExtra + kMmaWarps * 16 * kRingPiece;  // [warps][stages][4][16 rows] words
constexpr uint32_t kRingScale = kRingMeta + kMmaWarps * kRingStages * 256;  // [warps][16 rows][4 tiles] floats
constexpr size_t kRingSmem = kRingScale + kMmaWarps * 256;
static_assert(kRingStages == 4 && kMmaWarps * 2 * 16 == 256, "stages 0-1 fill the table's upper halves exactly");

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <bool M16>
__global__ void __launch_bounds__(kMmaWarps * 32, 2)
    gemv4_ring_kernel(Gemv4Set set, const bf16* x, int M, const float* map, int64_t cols) {
  constexpr int NB = M16 ? 2 : 1, S = kRingStages, T = kRingTiles;
  extern __shared__ __align__(16) uint32_t smem[];
  char* const sbytes = reinterpret_cast<char*>(smem);
  const Gemv4Smem sm{smem, reinterpret_cast<float*>(sbytes + kRingMap), reinterpret_cast<float*>(sbytes + kRingRed)};
  __shared__ float code[16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const float map_entry = gemv4_map_entry(set, map);  // first: see gemv4_map_entry
  const uint32_t ktiles = uint32_t(cols / 64), half_cols = uint32_t(cols / 2), groups = set.groups;
  // This warp's tiles of every group: [lo, hi), even bounds (ktiles is a multiple of 4), 4 a step.
  const uint32_t pairs = ktiles / 2, lo = 2 * (uint32_t(warp) * pairs / kMmaWarps),
                 hi = 2 * ((uint32_t(warp) + 1) * pairs / kMmaWarps);
  const uint32_t its = ((pairs + kMmaWarps - 1) / kMmaWarps * 2 + T - 1) / T;  // steps per group (the longest range)
  const uint32_t mine = blockIdx.x < groups ? (groups - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const uint32_t nsteps = mine * its;
  pdl_launch_dependents();  // see gemv4_mma_kernel
  __shared__ Gemv4Part parts[3];  // see gemv4_stream_kernel
  const auto part = gemv4_parts_in_smem(parts, set);
  const auto tiles_of = [&](uint32_t it) {  // the step's first tile and tile count (0, 2 or 4): warp-uniform
    const uint32_t base = lo + T * it;
    return make_uint2(base, base < hi ? min(uint32_t(T), hi - base) : 0u);
  };

  // Stage st of this warp: stages 0-1 in the table's upper halves, 2-3 in the extra rows.
  const uint32_t st01 = uint32_t(warp) * 2 * 16 * kRingPiece + kRingPiece / 2, st23 = kRingExtra + uint32_t(warp) * 16 * kRingPiece;
  const auto stage = [&](int st) { return st < 2 ? st01 + uint32_t(st) * 16 * kRingPiece : st23 + uint32_t(st - 2) * (kRingPiece / 2); };
  const uint32_t win = uint32_t(__cvta_generic_to_shared(smem));

  // The copy side. Lane l moves bytes 16 (l % 2) + 32 i of row r = l / 2 of a step (tile i's fragments of
  // lanes t4 = 2 (l % 2), + 1) to piece 4 i + 2 (r / 8) + (r / 4) % 2, at 32 (r % 4) + 16 (l % 2). The
  // meta of row l % 16: lanes 0-15 its code word(s) (the aligned word holding the step's first tile, and
  // the next where the step reaches into it), lanes 16-31 the absmax2 of its first and of its last tile.
  const uint32_t cdst = uint32_t(lane >> 4) * 2 * kRingPiece + uint32_t((lane >> 3) & 1) * kRingPiece +
                        uint32_t((lane >> 1) & 3) * 32 + uint32_t(lane & 1) * 16;
  struct Feed {
    uint32_t grp, it;
    const uint8_t* row;   // row l / 2 of the group at k-tile 0, + 16 (l % 2)
    const uint8_t* meta;  // row l % 16's codes (l < 16) or the absmax2 array (l >= 16)
    uint32_t mblk;        // row l % 16's first block
  };
  const auto enter = [&](Feed& f) {  // the pointers of a new group
    if (f.grp >= groups) return;
    const Gemv4Part& a = part(f.grp);
    const uint32_t n0 = (f.grp - a.first) * kMmaRows, last = a.rows - 1;  // rows past the end: the last, never stored
    f.row = a.packed + min(n0 + uint32_t(lane >> 1), last) * half_cols + 16 * (lane & 1);
    f.mblk = min(n0 + uint32_t(lane & 15), last) * ktiles;
    f.meta = lane < 16 ? a.qabsmax + f.mblk : reinterpret_cast<const uint8_t*>(a.absmax2);
  };
  const auto issue = [&](int st, const Feed& f) {
    const uint2 tc = tiles_of(f.it);
    if (f.grp < groups && tc.y > 0) {  // warp-uniform
      const uint32_t dst = win + stage(st) + cdst;
      const uint8_t* src = f.row + 32 * tc.x;
#pragma unroll
      for (int i = 0; i < T; ++i)
        if (uint32_t(i) < tc.y) cp_async16(dst + uint32_t(i) * 4 * kRingPiece, src + 32 * i);
      // Code words 4-byte aligned (gemv4_plan's words(4), and 4 | ktiles).
      const uint32_t meta = win + kRingMeta + uint32_t(warp * S + st) * 256 + 4 * lane;
      cp_async4(meta, lane < 16 ? f.meta + (tc.x & ~3u) : f.meta + 4 * ((f.mblk + tc.x) >> 8));
      if (lane >= 16 || (tc.x & 3) + tc.y > 4)
        cp_async4(meta + 128, lane < 16 ? f.meta + (tc.x & ~3u) + 4 : f.meta + 4 * ((f.mblk + tc.x + tc.y - 1) >> 8));
    }
    cp_async_commit();  // one group per step, empty or not, so that wait_group counts steps
  };
  const auto next = [&](Feed& f) {
    if (++f.it == its) {
      f.it = 0, f.grp += gridDim.x;
      enter(f);
    }
  };

  Feed ld{blockIdx.x, 0, nullptr, nullptr, 0};
  enter(ld);
#pragma unroll
  for (int st = 0; st < S; ++st) issue(st, ld), next(ld);  // frozen weights: before pdl_wait (PDL)
  gemv4_build_tables(set, map_entry, sm, code);
  pdl_wait();  // x is the previous kernel's output, and y may be what it reads

  const char* tab = reinterpret_cast<const char*>(sm.pairs);
  const uint32_t lane4 = 4u * lane;
  // This lane's fragment of tile j, row half h of a stage: piece 4 j + 2 h + g / 4, 32 (g % 4) + 8 t4.
  const uint32_t frag = uint32_t(g >> 2) * kRingPiece + uint32_t(g & 3) * 32 + 8 * uint32_t(t4);
  const char* frag01 = sbytes + st01 + frag;
  const char* frag23 = sbytes + st23 + frag;
  float* const scale = reinterpret_cast<float*>(sbytes + kRingScale) + warp * 64;  // [16 rows][4 tiles]
  uint32_t xoff[NB];
#pragma unroll
  for (int h = 0; h < NB; ++h) xoff[h] = uint32_t(g + 8 * h) * uint32_t(cols) + 16 * t4;
  float acc[NB][4] = {};
  int4 xv[NB][2] = {};  // see gemv4_load_x
  uint32_t grp = blockIdx.x, it = 0, cblk = 0;  // cblk: row lane % 16's first block (the scale side)
  float offset = 0.f;
  const auto enter_c = [&] {
    if (grp >= groups) return;
    const Gemv4Part& a = part(grp);
    offset = a.offset;
    cblk = min((grp - a.first) * kMmaRows + uint32_t(lane & 15), a.rows - 1) * ktiles;
  };
  enter_c();
  for (uint32_t s = 0; s < nsteps; s += S) {
#pragma unroll
    for (int st = 0; st < S; ++st) {
      if (s + st >= nsteps) break;  // block-uniform
      cp_async_wait<S - 1>();
      __syncwarp();  // the other lanes' copies of this stage are visible
      const uint2 tc = tiles_of(it);
      if (tc.y > 0) {  // warp-uniform
        {  // the step's absmax: lane l decodes row l % 16's tiles 2 (l / 16), + 1
          const uint32_t* meta = reinterpret_cast<const uint32_t*>(sbytes + kRingMeta + (warp * S + st) * 256);
          const uint32_t r = lane & 15, half = uint32_t(lane >> 4);
          // The step's 4 codes of row r: from byte tc.x % 4 (0 or 2) of word 0 on, into word 1.
          const uint32_t q = __funnelshift_r(meta[r], meta[32 + r], 8 * (tc.x & 3)) >> (16 * half);
          const float a2a = __uint_as_float(meta[16 + r]), a2b = __uint_as_float(meta[48 + r]);
          const uint32_t a2first = (cblk + tc.x) >> 8;
          float v[2];
#pragma unroll
          for (int k = 0; k < 2; ++k) {
            const uint32_t t = 2 * half + k;
            const float a2 = ((cblk + tc.x + t) >> 8) != a2first ? a2b : a2a;
            v[k] = quant::dq_absmax(sm.dqmap[(q >> (8 * k)) & 0xFFu], a2, offset);  // past the step's tiles: unused
          }
          reinterpret_cast<float2*>(scale)[2 * r + (lane >> 4)] = make_float2(v[0], v[1]);
        }
        __syncwarp();
        const float4 sc0 = reinterpret_cast<const float4*>(scale)[g], sc1 = reinterpret_cast<const float4*>(scale)[g + 8];
        const float s0[4] = {sc0.x, sc0.y, sc0.z, sc0.w}, s1[4] = {sc1.x, sc1.y, sc1.z, sc1.w};
        const char* fr = (st < 2 ? frag01 : frag23) + (st < 2 ? st * 16 * kRingPiece : (st - 2) * (kRingPiece / 2));
        const bf16* xs[NB];
#pragma unroll
        for (int h = 0; h < NB; ++h) xs[h] = x + (xoff[h] + 64 * tc.x);
#pragma unroll
        for (int j = 0; j < T; ++j) {
          if (uint32_t(j) >= tc.y) break;  // warp-uniform
          const uint2 w0 = *reinterpret_cast<const uint2*>(fr + j * 4 * kRingPiece);
          const uint2 w1 = *reinterpret_cast<const uint2*>(fr + j * 4 * kRingPiece + 2 * kRingPiece);
          const bf16* xt[NB];
#pragma unroll
          for (int h = 0; h < NB; ++h) xt[h] = xs[h] + 64 * j;
          gemv4_load_x<NB>(xv, xt, M, g);
          float c[NB][4];
          gemv4_tile<NB>(c, w0, w1, xv, tab, lane4);
#pragma unroll
          for (int h = 0; h < NB; ++h) {
            acc[h][0] += c[h][0] * s0[j];
            acc[h][1] += c[h][1] * s0[j];
            acc[h][2] += c[h][2] * s1[j];
            acc[h][3] += c[h][3] * s1[j];
          }
        }
      }
      __syncwarp();  // every lane is done with the stage and the scales before they are written again
      issue(st, ld);
      next(ld);
      if (++it == its) {  // the group's last step: block-uniform
        const Gemv4Part& a = part(grp);
        const uint32_t n0 = (grp - a.first) * kMmaRows;
        gemv4_reduce<1, 0>(reinterpret_cast<const float(&)[1][4]>(acc[0]), sm.red, M, n0, a.rows, a.y);
        if constexpr (M16) gemv4_reduce<1, 1>(reinterpret_cast<const float(&)[1][4]>(acc[1]), sm.red, M, n0, a.rows, a.y);
#pragma unroll
        for (int h = 0; h < NB; ++h)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[h][i] = 0.f;
        it = 0, grp += gridDim.x;
        enter_c();
      }
    }
  }
  cp_async_wait<0>();  // nothing in flight into shared memory at exit
}

// 73 KB: three blocks fit an SM's 228 KB with their 1 KB reserves.
constexpr size_t kMmaSmem = (256 * kPairRowWords + 256 + kMmaWarps * 2 * 32 * 4) * sizeof(float);  // red sized for NB = 2

// PDL (kernels/cuda/pdl.cuh) for every size: the early dependent's L2 prefetch and table build
// overlap the tail of the kernel before. In bench_quant_kernels' chain of GEMVs it lost on LLaMA-7B's
// weights (per layer 94 us vs 89 plain at M 1: the prefetch of the next weight contends with this
// one's stream; H200, 2026-12-04), but in a decode step a GEMV follows a norm, RoPE, attention or a
// pointwise op, never another GEMV, and there PDL on all of them took LLaMA-7B NF4 decode at batch 1
// from 3.15 to 2.99 ms per token (4.04 -> 4.00 at batch 8; bench_decode, H100, 2026-12-05, with the
// one-wave launches on PDL too). QT_GEMV_PDL_MAX_MIB bounds it again (4 = the earlier rule).
int64_t pdl_max_bytes() {
  static const int64_t bytes = int64_t(env_mib("QT_GEMV_PDL_MAX_MIB", size_t(1) << 20));
  return bytes;
}

template <class K>
void allow_smem(K kernel, size_t bytes = kMmaSmem) {  // in case the table and the partial sums outgrow the default 48 KB
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Persistent blocks, at most kMinBlocks per SM (all resident, so a dependent launched early cannot
// hold resources a block of this grid still waits for).
template <bool M16, int kTiles, int kLoads, int kMinBlocks, int kX = kXGlobal, int kY = kYProducts>
void launch_gemv4_stream(bool pdl, const Gemv4Set& set, const bf16* x, int M, const float* map, int64_t cols,
                         const Gemv4MadeX& made = {}, const Gemv4Rope& rope = {}) {
  const auto kernel = gemv4_stream_kernel<M16, kTiles, kLoads, kMinBlocks, kX, kY>;
  static bool attrs = false;
  if (!attrs) allow_smem(kernel), attrs = true;
  const unsigned grid = unsigned(std::min<int64_t>(set.groups, int64_t(kMinBlocks) * Context::get().sm_count()));
  launch_pdl(pdl, kernel, grid, kMmaWarps * 32, kMmaSmem, set, x, M, map, cols, made, rope);
}

// How the streamed kernel runs one weight at M x rows: a function of the weight alone (its width,
// double quant and the alignment of its codes), and a set is one launch only when every part would
// run alone the same way, so each output is the same bits alone or in a set.
//  - 8 tiles a step (4 KB of a warp's weights per step, two blocks per SM) at M <= 8 where a row
//    holds whole steps of word-loaded codes (LLaMA's 4096-wide rows);
//  - otherwise kTiles by the k-tiles per row (8 warps share a row group's tiles: fewer per step where
//    a row is short, so that every warp has work). Two blocks per SM (128 registers) at 4 tiles a step:
//    LLaMA-7B's down projection (11008 wide, 172 tiles a row) at M 1 took 20.0 us with three blocks
//    (80 registers) and 14.1 us with two, M 8 23.3 -> 15.2 (bench_quant_kernels, H100, 2026-12-05);
//    three at 1 or 2 tiles and M <= 8 (short rows: SmolLM2).
struct Gemv4Plan {
  int tiles, loads;
  bool operator==(const Gemv4Plan& o) const { return tiles == o.tiles && loads == o.loads; }
};
Gemv4Plan gemv4_plan(int64_t cols, bool dq, const uint8_t* qabsmax, int M) {
  const int64_t ktiles = cols / 64;
  const auto words = [&](int t) { return dq && ktiles % t == 0 && reinterpret_cast<uintptr_t>(qabsmax) % t == 0; };
  static const bool eight = env_flag("QT_GEMV4_TILES8", true);  // 0: not 8 tiles a step (for measuring)
  if (eight && M <= 8 && ktiles >= 8 * kMmaWarps && words(8)) return {8, kWordCodes};
  const int tiles = ktiles >= 4 * kMmaWarps ? 4 : ktiles >= 2 * kMmaWarps ? 2 : 1;
  if (!dq) return {tiles, kF32Absmax};
  return {tiles, tiles > 1 && words(tiles) ? kWordCodes : kPerTile};
}

// Whether the streamed kernel runs with x in shared memory, where it fits the table's spare halves
// (LLaMA-7B at M = 1: 8 / 22 KB): word-loaded codes of 8 or 4 tiles a step at M <= 8.
bool gemv4_stages_x(Gemv4Plan plan, int M, int64_t cols, int64_t groups) {
  return M <= 8 && plan.loads == kWordCodes && (plan.tiles == 8 || plan.tiles == 4) &&
         gemv4_x_in_smem(M, cols, groups, 2 * Context::get().sm_count());
}

template <bool M16>
void launch_gemv4_stream_for(bool pdl, const Gemv4Set& set, Gemv4Plan plan, const bf16* x, int M, const float* map,
                             int64_t cols) {
  constexpr int B = M16 ? 2 : 3;
#define QT_GO(T, L, MB) return launch_gemv4_stream<M16, T, L, MB>(pdl, set, x, M, map, cols)
  if constexpr (!M16) {
    if (gemv4_stages_x(plan, M, cols, set.groups))
      return plan.tiles == 8 ? launch_gemv4_stream<false, 8, kWordCodes, 2, kXShared>(pdl, set, x, M, map, cols)
                             : launch_gemv4_stream<false, 4, kWordCodes, 2, kXShared>(pdl, set, x, M, map, cols);
    if (plan.tiles == 8) QT_GO(8, kWordCodes, 2);
  }
  if (plan.tiles == 4) {
    if (plan.loads == kWordCodes) QT_GO(4, kWordCodes, 2);
    if (plan.loads == kF32Absmax) QT_GO(4, kF32Absmax, 2);
    QT_GO(4, kPerTile, 2);
  }
  if (plan.tiles == 2) {
    if (plan.loads == kWordCodes) QT_GO(2, kWordCodes, B);
    if (plan.loads == kF32Absmax) QT_GO(2, kF32Absmax, B);
    QT_GO(2, kPerTile, B);
  }
  if (plan.loads == kF32Absmax) QT_GO(1, kF32Absmax, B);
  QT_GO(1, kPerTile, B);  // one tile: its code is a byte either way
#undef QT_GO
}

// The ring kernel takes the plans of word-loaded steps of 4 or 8 tiles (rows of 32 k-tiles or more in
// multiples of 4, double quant: LLaMA-7B's projections). It runs for Gemv4Kernel::TensorCoreRing, and for
// the default TensorCore with QT_GEMV4_RING=1 (not the default: measured slower, see the kernel's comment).
bool gemv4_ring(Gemv4Plan plan) {
  static const bool env = env_flag("QT_GEMV4_RING", false);
  const Gemv4Kernel k = qtrain::gemv4_kernel();
  return (k == Gemv4Kernel::TensorCoreRing || (k == Gemv4Kernel::TensorCore && env)) && plan.loads == kWordCodes &&
         plan.tiles >= kRingTiles;
}

template <bool M16>
void launch_gemv4_ring(bool pdl, const Gemv4Set& set, const bf16* x, int M, const float* map, int64_t cols) {
  const auto kernel = gemv4_ring_kernel<M16>;
  static bool attrs = false;
  if (!attrs) allow_smem(kernel, kRingSmem), attrs = true;
  const unsigned grid = unsigned(std::min<int64_t>(set.groups, int64_t(2) * Context::get().sm_count()));
  launch_pdl(pdl, kernel, grid, kMmaWarps * 32, kRingSmem, set, x, M, map, cols);
}

void launch_gemv4_mma(const Gemv4Set& set, Gemv4Plan plan, const bf16* x, int M, const float* map, int64_t cols,
                      int64_t bytes) {
  const bool pdl = qtrain::decode_pdl() && bytes <= pdl_max_bytes();
  if (gemv4_ring(plan)) {
    if (M <= 8)
      launch_gemv4_ring<false>(pdl, set, x, M, map, cols);
    else
      launch_gemv4_ring<true>(pdl, set, x, M, map, cols);
    return;
  }
  if (qtrain::gemv4_kernel() == Gemv4Kernel::TensorCore || qtrain::gemv4_kernel() == Gemv4Kernel::TensorCoreRing) {
    if (M <= 8)
      launch_gemv4_stream_for<false>(pdl, set, plan, x, M, map, cols);
    else
      launch_gemv4_stream_for<true>(pdl, set, plan, x, M, map, cols);
    return;
  }
  // The batched kernel (set_gemv4_kernel, for comparison): persistent blocks as the streamed one's.
  static bool attrs = false;
  if (!attrs) allow_smem(gemv4_mma_kernel<false, 4, 3>), allow_smem(gemv4_mma_kernel<true, 2, 2>), attrs = true;
  const unsigned grid = unsigned(std::min<int64_t>(set.groups, int64_t(M <= 8 ? 3 : 2) * Context::get().sm_count()));
  if (M <= 8)
    launch_pdl(pdl, gemv4_mma_kernel<false, 4, 3>, grid, kMmaWarps * 32, kMmaSmem, set, x, M, map, cols);
  else
    launch_pdl(pdl, gemv4_mma_kernel<true, 2, 2>, grid, kMmaWarps * 32, kMmaSmem, set, x, M, map, cols);
}

template <int MT>
void launch_gemv4(FloatPtr y, const bf16* x, int M, const Q4View& a, const float* map, int64_t rows, int64_t cols) {
  // Loads per lane per chunk: enough to cover the row in one chunk when it is
  // short (4096 columns = 4 loads), at most 16 (64 registers of raw weights).
  const int64_t per_lane = (cols / 32 + 31) / 32;
  const unsigned blocks = unsigned((rows + 7) / 8);
  if (per_lane <= 4)
    gemv4_simt_kernel<MT, 4><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
  else if (per_lane <= 8)
    gemv4_simt_kernel<MT, 8><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
  else
    gemv4_simt_kernel<MT, 16><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
}

__global__ void dequant_int8_kernel(FloatPtr out, const int8_t* q, const float* absmax, int64_t row0, int64_t cols,
                                    int64_t n) {
  QT_GRID_STRIDE(k, n) {
    const int64_t r = row0 + k / cols;
    out.st(k, quant::int8_value(q[row0 * cols + k], absmax[r]));
  }
}

// The signed dynamic map on the GPU, uploaded once.
const float* device_dynamic_map() {
  static float* map = nullptr;
  if (!map) {
    const auto& m = quant::dynamic_map_signed();
    CUDA_CHECK(cudaMalloc(&map, sizeof(float) * 256));
    CUDA_CHECK(cudaMemcpy(map, m.data(), sizeof(float) * 256, cudaMemcpyHostToDevice));
  }
  return map;
}

// Whether the tensor-core GEMV takes this product (matmul_4bit's decode path; 32-bit offsets inside).
bool gemv4_mma_takes(const Tensor& x, const Quant4Tensor& w) {
  return gemv_4bit_supported(x, w) && reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 &&
         qtrain::gemv4_kernel() != Gemv4Kernel::CudaCore && w.rows * w.cols < (int64_t(1) << 32);
}

// The launch's view of a set of weights the tensor-core GEMV takes, with the same codes; bytes: theirs.
Gemv4Set gemv4_set(const std::vector<Tensor>& ys, const std::vector<const Quant4Tensor*>& ws, int64_t& bytes) {
  Gemv4Set set{};
  Gemv4Part* parts[3] = {&set.p0, &set.p1, &set.p2};
  set.p1.first = set.p2.first = UINT32_MAX;
  bytes = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    const Q4View a = ws[i]->view();
    *parts[i] = Gemv4Part{a.packed, a.absmax, a.qabsmax, a.absmax2, fptr(ys[i], "matmul_4bit y"), a.offset,
                          uint32_t(a.rows), set.groups, a.dq};
    set.groups += uint32_t((a.rows + kMmaRows - 1) / kMmaRows);
    set.any_dq = set.any_dq || a.dq;
    bytes += int64_t(ws[i]->bytes());
    if (i == 0) std::copy(a.code, a.code + 16, set.code);
  }
  return set;
}

// ys[i] = x W_i^T for such a set: one launch.
void launch_gemv4_set(const std::vector<Tensor>& ys, Tensor x, const std::vector<const Quant4Tensor*>& ws) {
  int64_t bytes = 0;
  const Gemv4Set set = gemv4_set(ys, ws, bytes);
  const int64_t cols = ws[0]->cols;
  const int M = int(x.numel() / cols);
  const Gemv4Plan plan = gemv4_plan(cols, set.p0.dq, set.p0.qabsmax, M);  // every part's (matmul_4bit_shared)
  launch_gemv4_mma(set, plan, static_cast<const bf16*>(x.raw()), M, device_dynamic_map(), cols, bytes);
}

// Whether the weights run as one set launch at this x (matmul_4bit_shared's test): each takes the
// tensor-core GEMV, with the same codes and the same plan.
bool gemv4_one_launch(const Tensor& x, const std::vector<const Quant4Tensor*>& ws) {
  bool one = x.numel() > 0 && !ws.empty() && ws.size() <= size_t(kGemv4MaxShared);
  const int M = one ? int(x.numel() / ws[0]->cols) : 0;
  const auto plan = [&](const Quant4Tensor& w) { const Q4View v = w.view(); return gemv4_plan(w.cols, v.dq, v.qabsmax, M); };
  for (const Quant4Tensor* w : ws)
    one = one && gemv4_mma_takes(x, *w) && w->code == ws[0]->code && plan(*w) == plan(*ws[0]);
  return one;
}

}  // namespace

void dequantize_rows_4bit(Tensor out, const Quant4Tensor& w, int64_t row0) {
  const int64_t n = out.numel(), e0 = row0 * w.cols;
  if (n == 0) return;
  Q4View a = w.view();
  const float* map = device_dynamic_map();
  if (out.dtype() == DType::BF16 && e0 % 8 == 0 && n % 8 == 0 && w.blocksize % 8 == 0 &&
      reinterpret_cast<uintptr_t>(out.raw()) % 16 == 0) {
    dequant4_bf16x8_kernel<<<grid_for(n / 8, 256), 256, 0, stream()>>>(static_cast<bf16*>(out.raw()), a, map, e0,
                                                                       n / 8);
  } else {
    dequant4_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "dequantize_rows_4bit out"), a, map, e0, n);
  }
  CUDA_CHECK_LAUNCH("dequantize_rows_4bit");
}

void dequantize_rows_int8(Tensor out, const Int8Tensor& w, int64_t row0) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dequant_int8_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "dequantize_rows_int8 out"),
                                                              static_cast<const int8_t*>(w.q.raw()), w.absmax.f32(),
                                                              row0, w.cols, n);
  CUDA_CHECK_LAUNCH("dequantize_rows_int8");
}

void matmul_4bit(Tensor y, Tensor x, const Quant4Tensor& w) {
  const int64_t M = x.numel() / w.cols;
  if (M == 0) return;
  if (!gemv_4bit_supported(x, w) || reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0) {
    // Any other shape: dequantize to BF16, then the dense product.
    Tensor dense = Tensor::empty({w.rows, w.cols}, DType::BF16, Device::CUDA);
    cuda::dequantize_rows_4bit(dense, w, 0);
    cuda::gemm(y, x, dense, false, true, 1.f, 0.f);
    return;
  }
  Q4View a = w.view();
  const float* map = device_dynamic_map();
  FloatPtr py = fptr(y, "matmul_4bit y");
  const bf16* px = static_cast<const bf16*>(x.raw());
  const int m = int(M);
  if (gemv4_mma_takes(x, w)) {
    launch_gemv4_set({y}, x, {&w});
  } else if (M <= 1)
    launch_gemv4<1>(py, px, m, a, map, w.rows, w.cols);
  else if (M <= 2)
    launch_gemv4<2>(py, px, m, a, map, w.rows, w.cols);
  else if (M <= 4)
    launch_gemv4<4>(py, px, m, a, map, w.rows, w.cols);
  else if (M <= 8)
    launch_gemv4<8>(py, px, m, a, map, w.rows, w.cols);
  else
    launch_gemv4<16>(py, px, m, a, map, w.rows, w.cols);
  CUDA_CHECK_LAUNCH("matmul_4bit");
}

// One launch for the set when every weight takes the tensor-core GEMV with the same codes; one product
// after the other otherwise (the same kernel per group either way: the same bits).
void matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor x, const std::vector<const Quant4Tensor*>& ws) {
  if (!gemv4_one_launch(x, ws)) {
    for (size_t i = 0; i < ws.size(); ++i) cuda::matmul_4bit(ys[i], x, *ws[i]);
    return;
  }
  launch_gemv4_set(ys, x, ws);
  CUDA_CHECK_LAUNCH("matmul_4bit_shared");
}

namespace {

bool aligned16(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

// One launch of the streamed kernel making x (kXRmsNorm) where the set is one launch of it with x in
// shared memory (LLaMA-7B's q+k+v and gate+up at M = 1 to 4): the normed rows staged where
// gemv4_stage_x would put x. kY: the products as they are, or SwiGLU of gate and up (set: gemv4_swiglu_set).
// An undefined tensor, with nothing allocated or launched, elsewhere. The caller checked that ws are
// one launch (gemv4_one_launch) and made the set of them.
template <int kY>
Tensor launch_gemv4_norm_inside(const Gemv4Set& set, int64_t bytes, Tensor h, Tensor rstd, Tensor x, Tensor r,
                                Tensor w, float eps, int64_t cols, const Gemv4Rope& rope = {}) {
  const Gemv4Kernel k = qtrain::gemv4_kernel();
  if (!qtrain::gemv4_norm_inside() || x.size(-1) > int64_t(kNormPieces) * 8 * kMmaWarps * 32 ||
      h.dtype() != DType::BF16 || (r.defined() && r.dtype() != DType::BF16) || rstd.dtype() != DType::F32 ||
      (w.dtype() != DType::BF16 && w.dtype() != DType::F32) || !aligned16(h) || !aligned16(r) || !aligned16(w) ||
      (k != Gemv4Kernel::TensorCore && k != Gemv4Kernel::TensorCoreRing))
    return Tensor();
  const int M = int(x.numel() / cols);
  const Gemv4Plan plan = gemv4_plan(cols, set.p0.dq, set.p0.qabsmax, M);  // every part's (gemv4_one_launch)
  if (gemv4_ring(plan) || !gemv4_stages_x(plan, M, cols, set.groups)) return Tensor();
  // The sum goes to a tensor of its own: other blocks still read x and r while block 0 writes it.
  Tensor sum = r.defined() ? Tensor::empty(x.shape(), DType::BF16, Device::CUDA) : x;
  const Gemv4MadeX made{r.defined() ? static_cast<const bf16*>(r.raw()) : nullptr,
                        fptr(w, "add_rmsnorm_matmul_4bit_shared w"),
                        static_cast<bf16*>(h.raw()),
                        r.defined() ? static_cast<bf16*>(sum.raw()) : nullptr,
                        rstd.f32(),
                        eps};
  const bool pdl = qtrain::decode_pdl() && bytes <= pdl_max_bytes();
  const bf16* px = static_cast<const bf16*>(x.raw());
  if (plan.tiles == 8)
    launch_gemv4_stream<false, 8, kWordCodes, 2, kXRmsNorm, kY>(pdl, set, px, M, device_dynamic_map(), cols, made, rope);
  else
    launch_gemv4_stream<false, 4, kWordCodes, 2, kXRmsNorm, kY>(pdl, set, px, M, device_dynamic_map(), cols, made, rope);
  return sum;
}

// {gate, up} as one set whose group g is rows 8g .. 8g + 7 of both (kYSwiglu), writing s.
Gemv4Set gemv4_swiglu_set(Tensor s, const Quant4Tensor& gate, const Quant4Tensor& up, int64_t& bytes) {
  Gemv4Set set = gemv4_set({s, s}, {&gate, &up}, bytes);
  set.p1.first = set.p2.first = UINT32_MAX;  // every group's part is gate's; up's rows by half_part
  set.groups = uint32_t(gate.rows / 8);
  return set;
}

}  // namespace

Tensor add_rmsnorm_matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor h, Tensor rstd, Tensor x, Tensor r,
                                      Tensor w, float eps, const std::vector<const Quant4Tensor*>& ws) {
  if (!gemv4_one_launch(x, ws)) return Tensor();  // gemv4_set wants weights the tensor-core GEMV takes
  int64_t bytes = 0;
  const Gemv4Set set = gemv4_set(ys, ws, bytes);
  const Tensor sum = launch_gemv4_norm_inside<kYProducts>(set, bytes, h, rstd, x, r, w, eps, ws[0]->cols);
  if (sum.defined()) CUDA_CHECK_LAUNCH("add_rmsnorm_matmul_4bit_shared");
  return sum;
}

Tensor add_rmsnorm_matmul_4bit_swiglu(Tensor s, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps,
                                      const Quant4Tensor& gate, const Quant4Tensor& up) {
  if (!qtrain::gemv4_swiglu_inside() || s.dtype() != DType::BF16 || !aligned16(s) || gate.rows != up.rows ||
      gate.rows % 8 != 0 || !gemv4_one_launch(x, {&gate, &up}))
    return Tensor();
  int64_t bytes = 0;
  const Gemv4Set set = gemv4_swiglu_set(s, gate, up, bytes);
  const Tensor sum = launch_gemv4_norm_inside<kYSwiglu>(set, bytes, h, rstd, x, r, w, eps, gate.cols);
  if (sum.defined()) CUDA_CHECK_LAUNCH("add_rmsnorm_matmul_4bit_swiglu");
  return sum;
}

Tensor add_rmsnorm_matmul_4bit_rope_kv(Tensor q, Tensor k, Tensor v, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w,
                                       float eps, const Quant4Tensor& wq, const Quant4Tensor& wk, const Quant4Tensor& wv,
                                       Tensor kc, Tensor vc, float theta, SeqPos pos) {
  const int64_t B = q.size(0), T = q.size(1), D = q.size(3), N = B * T;
  const std::vector<const Quant4Tensor*> ws = {&wq, &wk, &wv};
  bool ok = qtrain::gemv4_rope_inside() && D % 16 == 0 && k.size(3) == D && v.size(3) == D;
  for (const Tensor* t : {&q, &k, &v, &kc, &vc}) ok = ok && t->dtype() == DType::BF16 && aligned16(*t);
  if (!ok || !gemv4_one_launch(x, ws)) return Tensor();
  const std::vector<Tensor> ys = {q.view({N, wq.rows}), k.view({N, wk.rows}), v.view({N, wv.rows})};
  int64_t bytes = 0;
  const Gemv4Set set = gemv4_set(ys, ws, bytes);
  const Gemv4Rope rope{rope_table(pos.extent(int(T)), int(D), theta), pos.dev, static_cast<bf16*>(kc.raw()),
                       static_cast<bf16*>(vc.raw()), pos.first, int(T), int(kc.size(1)), int(D)};
  const Tensor sum = launch_gemv4_norm_inside<kYRopeKv>(set, bytes, h, rstd, x, r, w, eps, wq.cols, rope);
  if (sum.defined()) CUDA_CHECK_LAUNCH("add_rmsnorm_matmul_4bit_rope_kv");
  return sum;
}

}  // namespace qtrain::cuda
