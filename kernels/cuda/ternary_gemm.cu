// The W2A8 product (kernels/ternary.h) at training shapes, in one launch on
// Hopper's warpgroup MMA (wgmma, sm_90a), both operands in shared memory.
//
// Why: the general path (unpack the codes to int8, cuBLASLt's int8 GEMM into an
// int32 matrix, then LLM.int8's epilogue) moves the int32 product through
// memory twice and costs five launches: 3.5-4.8x a cuBLASLt BF16 GEMM of the
// same shape at K = 576 (H100, 2026-12-05). x comes quantized (quantize_act_q8,
// kernels/cuda/ternary_act.cu: int8 codes, the row's absmax and sum of codes),
// fused there with the SubLN before it, once for every product reading it.
//
// Warp-specialized and persistent: a block is three warpgroups and walks output
// tiles of 128 tokens x 64 NB channels (tile t: token block t / ch_tiles,
// channel block t % ch_tiles) as units u = blockIdx.x, + gridDim.x, ...: whole
// tiles for the full rounds over the resident blocks; the tiles of a last,
// partial round come as two units each of half the channels (32 NB, m64n(32 NB)
// products), when the blocks hold them, so that round takes half a tile's time.
//   producer (warpgroup 0): per 128-column chunk of K, into a ring of kStages
//             shared stages: x's 128 x 128 int8 block by one TMA copy (the map's
//             zero fill covers rows past N and columns past K), and the weight's
//             2-bit codes, loaded kAhead chunks ahead into a register ring and
//             written as int8 in the same 128-byte swizzle (the codes are c = T + 1,
//             and (word >> 2t) & 0x03030303 is weights 4t..4t+3 of a 16-weight
//             word in byte order, so a word is 16 bytes of a row). It runs
//             ahead across tiles, so the next tile's stages fill under this
//             tile's last products and epilogue;
//   consumers (warpgroups 1, 2): tokens 0-63 and 64-127 of the tile, all its
//             channels: per stage one m64n(64 NB)k32 wgmma per 32 columns, x as A,
//             the stage's weights as B (x read from shared memory once for all
//             the tile's channels); a stage goes back to the producer once the
//             products after it were issued and its own completed.
//             sum x T = sum x c - sum x, exact in int32;
//   epilogue: D is [token, channel], a thread's pairs of adjacent channels;
//             the LLM.int8 rescale (same F32 operations in the same order:
//             y equals the general path bit for bit) with the weight and row
//             scales loaded at the tile's start, then each quad of lanes trades
//             values so that a lane stores 16 contiguous bytes (whole sectors).
// The int32 product never leaves the chip.
//
// Where the time went (H100 and H200, 2026-12-07, SmolLM2 shapes, M = 8192): with
// the epilogue removed the kernel took half the time (q/o 18 -> 9 us, gate/up 38
// -> 18); without the products, or without the decode, within 10-15%. Storing
// pairs straight from the accumulators (8 rows x 16 bytes a warp store) and
// loading the scales there was the cost; the quad exchange and the early loads
// took NB = 1 from 17.3 / 37.4 / 31.0 to 15.0 / 34.0 / 29.2 us and made the wide
// tile the fastest (NB = 3: 14.1 / 25.6 / 26.0; BF16 11.5 / 23.0 / 20.4, H200).
// Codes one chunk ahead instead of three, and NB m64n64 products instead of one
// wide one, measured the same (H100, before the epilogue change).
//
// The last round (H100, 2026-12-07, against the binary before, alternated twice):
// q/o and down are 192 tiles of NB = 3 on 132 SMs, 1.45 rounds' work in 2. As
// channel halves the 60 last tiles are 120 units in one round: q/o 14.0 -> 12.1
// us, down 25.8 -> 23.0 (gate/up, 512 tiles, is not split: 25.6 -> 25.0); a half
// decoding only the row blocks it reads, down 23.0 -> 22.2; launched with PDL,
// q/o 12.1 -> 11.9 and down 22.4 -> 22.0. Split
// in K instead (stream-K: the first piece stores its int32 sums, the second adds
// them and runs the epilogue), q/o went 14.1 -> 17.5 and down stayed: a tile's
// time is mostly not its K loop, and its int32 sums (96 KB) cost the SM as much
// to store and read back as the half loop saved.
//
// The version before this one (kept in history: each warpgroup decoded its own
// stages and waited on a barrier before its wgmmas; x's rows whole in shared
// memory before the first product) was latency-bound: ncu (H100, 576 x 576,
// M = 8192) showed the tensor pipe busy under 25% of the time, warps issuing
// every ~11 cycles and waiting mostly on L1TEX; 1.9-2.4x BF16 at SmolLM2's shapes.
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/ternary_gemm.cuh"
#include "kernels/cuda/tma.cuh"
#include "kernels/cuda/wgmma.cuh"
#include "kernels/quant/decode.h"

namespace qtrain::cuda {
namespace {

using quant::kInt8Inv127;

constexpr int kThreads = 384, kTokens = 128, kChunk = 128, kStages = 4;
constexpr int kAhead = 3;  // chunks of weight codes the producer holds in registers ahead of the one it writes
constexpr int kXBytes = kTokens * kChunk;  // 16 KB: the TMA box
constexpr int kWBlockBytes = 64 * kChunk;  // 8 KB: 64 channels of a chunk
template <int NB>
constexpr int stage_bytes() { return kXBytes + NB * kWBlockBytes; }
template <int NB>
constexpr size_t smem_bytes() {
  return size_t(kStages) * stage_bytes<NB>() + 2 * kStages * sizeof(uint64_t) + 2 * 64 * NB * sizeof(float) + 1024;
}
// NB = 1 fits two blocks an SM (registers, shared memory)
constexpr int min_blocks(int nb) { return nb == 1 ? 2 : 1; }
// Tiles of 64 nb channels across out, and of kTokens tokens x 64 nb channels across an n x out product.
constexpr int64_t channel_tiles(int64_t out, int nb) { return (out + 64 * nb - 1) / (64 * nb); }
constexpr int64_t tile_count(int64_t n, int64_t out, int nb) {
  return (n + kTokens - 1) / kTokens * channel_tiles(out, nb);
}

// bar.sync among the 128 threads of consumer warpgroup cw (barrier 1 + cw; 0 is __syncthreads'): the
// other warpgroups run on. Immediate ids, so that ptxas reserves three barriers, not all sixteen.
__device__ __forceinline__ void warpgroup_sync(int cw) {
  if (cw == 0)
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
  else
    asm volatile("bar.sync 2, 128;\n" ::: "memory");
}

// A 4 x 4 transpose of 32-bit words over the 4 lanes of a quad (lanes 4q .. 4q + 3; t = lane % 4): lane
// t's w[k] becomes lane k's w[t]. Three exchanges: with lane t ^ i, lane t sends w[t ^ i] and receives
// the partner's w[t] into w[t ^ i].
__device__ __forceinline__ void quad_transpose(uint32_t (&w)[4], int t) {
#pragma unroll
  for (int i = 1; i < 4; ++i) {
    const int k = t ^ i;
    const uint32_t send = k == 0 ? w[0] : k == 1 ? w[1] : k == 2 ? w[2] : w[3];
    const uint32_t got = __shfl_xor_sync(0xffffffffu, send, i);
#pragma unroll
    for (int m = 0; m < 4; ++m) w[m] = m == k ? got : w[m];
  }
}

// Work units (why: the file's head). Units 0 .. dp - 1 are whole tiles of 64 NB channels; with kSplit
// the tiles after them come as two units each, channel halves of 32 NB (m64n(32 NB) products).
struct Sched {
  int dp, units;
};
struct Span {
  int tile, ch0, half;  // half -1: the whole tile; ch0: the unit's first channel
};
template <int NB, bool kSplit>
__device__ __forceinline__ Span unit_span(const Sched& sc, int u, int ch_tiles) {
  if (!kSplit || u < sc.dp) return {u, (u % ch_tiles) * 64 * NB, -1};
  const int v = u - sc.dp, tile = sc.dp + v / 2, half = v % 2;
  return {tile, (tile % ch_tiles) * 64 * NB + half * 32 * NB, half};
}

template <class TY, int NB, bool kSplit>
__global__ void __launch_bounds__(kThreads, min_blocks(NB))
    ternary_ws_kernel(const __grid_constant__ CUtensorMap xmap, TY* __restrict__ y, const int* __restrict__ xsum,
                      const float* __restrict__ xabs, const uint8_t* __restrict__ codes,
                      const float* __restrict__ wabs, int N, int K, int out, int ch_tiles, const Sched sc) {
#if QT_HAS_WGMMA
  extern __shared__ uint8_t smem_raw[];
  // 128-byte swizzled operands want 1024-byte aligned stages
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * stage_bytes<NB>());
  uint64_t* empty = full + kStages;
  float* wd_sm = reinterpret_cast<float*>(empty + kStages);  // per consumer warpgroup: the tile's 64 NB weight scales
  const int tid = threadIdx.x, wg = tid >> 7, wtid = tid & 127;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 128 + 1);  // every producer thread, plus the TMA's expect_tx
      mbar_init(&empty[s], 8);       // every consumer warp
    }
    mbar_init_fence();
  }
  __syncthreads();
  // Launched with PDL (kernels/cuda/pdl.cuh), the barriers above are set up under the previous kernel's
  // tail; everything the stream writes (x and its scales, the codes, which QAT re-quantizes each step,
  // and y) comes after this.
  pdl_entry();
  const int nchunks = (K + kChunk - 1) / kChunk;

  if (wg == 0) {
    // Producer. Thread (dr, dh) writes row dr of each 64-channel block, columns dh * 64 .. + 63 of
    // the chunk: eight lanes take eight rows, so their 16-byte stores fall in eight swizzled slots.
    const int dr = (wtid & 7) | ((wtid >> 4) << 3), dh = (wtid >> 3) & 1;
    const int64_t rb = K / 4;
    // A half unit (32 NB channels) takes its first (NB + 1) / 2 blocks of 64 rows.
    const auto blocks = [](const Span& sp) { return sp.half >= 0 ? (NB + 1) / 2 : NB; };
    auto load = [&](const Span& sp, int c, uint4 (&v)[NB]) {
      if (c * kChunk + dh * 64 >= K) return;  // past K: the consumers skip these columns
      const int ch0 = sp.ch0, nbl = blocks(sp);
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        if (b >= nbl) break;
        const int64_t row = min(ch0 + b * 64 + dr, out - 1);  // past the last row: a valid row, never stored
        v[b] = __ldg(reinterpret_cast<const uint4*>(codes + row * rb + (c * kChunk + dh * 64) / 4));
      }
    };
    // Codes kAhead chunks ahead in a register ring (the loop over d unrolled, so ring[d] is registers), so
    // that writing a chunk never waits on its codes' load. (It measured the same as one chunk ahead while the
    // epilogue set the pace; it costs no shared memory and few registers.)
    uint4 ring[kAhead][NB];
    // A cursor over this block's units' chunks: unit u, its span, chunk c.
    struct Cursor {
      int u;
      Span sp;
      int c;
    };
    const auto start = [&](int u) { return Cursor{u, unit_span<NB, kSplit>(sc, u, ch_tiles), 0}; };
    const auto advance = [&](Cursor& k) {
      if (++k.c == nchunks) k = start(k.u + int(gridDim.x));
    };
    Cursor lk = start(int(blockIdx.x));  // the next chunk to load
#pragma unroll
    for (int d = 0; d < kAhead; ++d) {
      if (lk.u < sc.units) load(lk.sp, lk.c, ring[d]);
      advance(lk);
    }
    Cursor k = start(int(blockIdx.x));
    int it = 0;
    while (k.u < sc.units) {
#pragma unroll
      for (int d = 0; d < kAhead; ++d) {
        if (k.u >= sc.units) break;
        const int tile = k.sp.tile, c = k.c;
        const int s = it % kStages;
        mbar_wait(&empty[s], ((it / kStages) & 1) ^ 1);
        uint8_t* xs = smem + s * stage_bytes<NB>();
        uint8_t* ws = xs + kXBytes;
        if (wtid == 0) {
          mbar_arrive_expect_tx(&full[s], kXBytes);
          tma_load_2d(xs, &xmap, c * kChunk, (tile / ch_tiles) * kTokens, &full[s]);
        }
        if (c * kChunk + dh * 64 < K) {
          const uint32_t m = 0x03030303u;
          const int nbl = blocks(k.sp);
#pragma unroll
          for (int b = 0; b < NB; ++b) {
            if (b >= nbl) break;
            const uint32_t w[4] = {ring[d][b].x, ring[d][b].y, ring[d][b].z, ring[d][b].w};
            const int r = b * 64 + dr;
#pragma unroll
            for (int j = 0; j < 4; ++j)
              *reinterpret_cast<uint4*>(ws + r * kChunk + (((dh * 4 + j) ^ (r & 7)) << 4)) =
                  make_uint4(w[j] & m, (w[j] >> 2) & m, (w[j] >> 4) & m, (w[j] >> 6) & m);
          }
        }
        fence_proxy_async_smem();  // the stores, by the generic proxy, before wgmma reads them
        mbar_arrive(&full[s]);
        if (lk.u < sc.units) load(lk.sp, lk.c, ring[d]);  // kAhead chunks on
        advance(lk);
        advance(k);
        ++it;
      }
    }
    return;
  }

  // Consumers: warpgroup cw takes tokens 64 cw .. 64 cw + 63 of each tile.
  const int cw = wg - 1, warp = wtid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  int it = 0;
  float* wds = wd_sm + cw * 64 * NB;
  for (int u = int(blockIdx.x); u < sc.units; u += int(gridDim.x)) {
    const Span sp = unit_span<NB, kSplit>(sc, u, ch_tiles);
    // The epilogue's operands, loaded now so that their latency passes under the products: this thread's
    // share of the tile's weight scales (to shared memory at the epilogue) and its two rows' x scales.
    const int tok0 = (sp.tile / ch_tiles) * kTokens + cw * 64, ch0 = sp.ch0;
    float wpre[(64 * NB + 127) / 128];
#pragma unroll
    for (int i = 0; i < (64 * NB + 127) / 128; ++i)
      if (wtid + 128 * i < 64 * NB) wpre[i] = __ldg(wabs + min(ch0 + wtid + 128 * i, out - 1));
    int rs[2];
    float xs_r[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int tk = min(tok0 + 16 * warp + g + 8 * h, N - 1);
      rs[h] = __ldg(xsum + tk);
      xs_r[h] = __ldg(xabs + tk);
    }
    // A unit of W channels (64 NB, or 32 NB for a half): products and epilogue. The two widths are two
    // whole copies, each with its own accumulators: with one set shared by both product loops ptxas
    // serialized the wgmmas (C7515), as it does for wgmmas under a branch.
    const auto unit = [&](auto width) {
      constexpr int W = decltype(width)::value;
      int acc[W / 2];
#pragma unroll
      for (int i = 0; i < W / 2; ++i) acc[i] = 0;
      for (int c = 0; c < nchunks; ++c, ++it) {
        const int s = it % kStages;
        mbar_wait(&full[s], (it / kStages) & 1);
        const uint8_t* xs = smem + s * stage_bytes<NB>();
        const uint64_t da = wgmma_desc_sw128(xs + cw * (kXBytes / 2)), db = wgmma_desc_sw128(xs + kXBytes);
        // A last chunk of 64 columns: x's zero fill makes the other half's products 0, whatever the
        // stage holds there; issuing them anyway keeps the wgmmas out of a branch.
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kChunk / 32; ++kk)  // the stage's first W weight rows, contiguous: one B operand
          wgmma_s8<W>(acc, da + uint64_t(2 * kk), db + uint64_t(2 * kk));
        wgmma_commit();
        wgmma_wait<1>();  // the previous stage's products are done: it goes back
        if (c > 0 && lane == 0) mbar_arrive(&empty[(it - 1) % kStages]);
      }
      wgmma_wait<0>();
      if (lane == 0) mbar_arrive(&empty[(it - 1) % kStages]);
#pragma unroll
      for (int i = 0; i < W / 2; ++i) wgmma_pin(acc[i]);

      // Epilogue: acc[4J + 2h + e] = token 16 warp + g + 8h, channel 8J + 2 t4 + e of the unit (J < W / 8:
      // octets of channels). y = (acc - rs) * (xabs / 127) * (wabs / 127), the general path's F32 operations
      // in its order, so y is its bits. Each quad then trades its values (quad_transpose) so that lane t4
      // holds all of octet 4q + t4: a warp's store writes 64 contiguous bytes of each of its 8 rows (BF16;
      // F32: 2 x 64) instead of 16, a quarter of the store instructions, and whole 32-byte sectors.
      warpgroup_sync(cw);  // the previous unit's reads of wds are done
#pragma unroll
      for (int i = 0; i < (64 * NB + 127) / 128; ++i)
        if (wtid + 128 * i < 64 * NB) wds[wtid + 128 * i] = __fmul_rn(wpre[i], kInt8Inv127);
      warpgroup_sync(cw);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int tk = tok0 + 16 * warp + g + 8 * h;
        const float xr = __fmul_rn(xs_r[h], kInt8Inv127);
        TY* yr = y + int64_t(tk) * out + ch0;
#pragma unroll
        for (int q = 0; q < W / 32; ++q) {
          [[maybe_unused]] uint32_t lo[4], hi[4];  // per octet 4q + jj: this lane's pair (BF16: lo; F32: lo, hi)
#pragma unroll
          for (int jj = 0; jj < 4; ++jj) {
            const int J = 4 * q + jj, c = 8 * J + 2 * t4;
            const float2 wd = *reinterpret_cast<const float2*>(wds + c);
            const float v0 = __fmul_rn(__fmul_rn(float(acc[4 * J + 2 * h] - rs[h]), xr), wd.x);
            const float v1 = __fmul_rn(__fmul_rn(float(acc[4 * J + 2 * h + 1] - rs[h]), xr), wd.y);
            if constexpr (std::is_same_v<TY, bf16>) {
              const __nv_bfloat162 p = __floats2bfloat162_rn(v0, v1);
              lo[jj] = *reinterpret_cast<const uint32_t*>(&p);
            } else {
              lo[jj] = __float_as_uint(v0), hi[jj] = __float_as_uint(v1);
            }
          }
          quad_transpose(lo, t4);  // lane t4: pairs 0..3 of octet 4q + t4
          if constexpr (!std::is_same_v<TY, bf16>) quad_transpose(hi, t4);
          const int J = 4 * q + t4;
          if (tk >= N || ch0 + 8 * J >= out) continue;  // out % 8 == 0: an octet is all in or all out
          if constexpr (std::is_same_v<TY, bf16>) {
            *reinterpret_cast<uint4*>(yr + 8 * J) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
          } else {
            *reinterpret_cast<uint4*>(yr + 8 * J) = make_uint4(lo[0], hi[0], lo[1], hi[1]);
            *reinterpret_cast<uint4*>(yr + 8 * J + 4) = make_uint4(lo[2], hi[2], lo[3], hi[3]);
          }
        }
      }
    };
    if constexpr (kSplit && NB >= 2) {  // (the schedule halves no NB = 1 tile: there is no m64n32 here)
      if (sp.half >= 0)
        unit(std::integral_constant<int, 32 * NB>{});
      else
        unit(std::integral_constant<int, 64 * NB>{});
    } else {
      unit(std::integral_constant<int, 64 * NB>{});
    }
  }
#endif
}

// Whether this build carries the kernel's sm_90a code and the GPU runs it.
template <class TY, int NB>
bool kernel_runs_here() {
  static const bool ok = [] {
    cudaFuncAttributes a{};
    return cudaFuncGetAttributes(&a, ternary_ws_kernel<TY, NB, false>) == cudaSuccess && a.binaryVersion == 90;
  }();
  return ok;
}

// Resident blocks an SM. The kernel with halves (NB 2 and 3 only) is not queried apart: the same shared
// memory, and one block an SM at those widths either way (__launch_bounds__).
template <class TY, int NB>
int blocks_per_sm() {
  static const int bps = [] {
    auto* kernel = ternary_ws_kernel<TY, NB, false>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes<NB>())));
    if constexpr (NB >= 2)
      CUDA_CHECK(cudaFuncSetAttribute(ternary_ws_kernel<TY, NB, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      int(smem_bytes<NB>())));
    int n = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem_bytes<NB>()));
    return std::max(n, 1);
  }();
  return bps;
}

// The schedule over `slots` resident blocks: whole tiles for the full rounds, and the tiles of a last,
// partial round as two channel halves each where the slots hold them (NB 2 and 3). Without it a block of
// the last round is one tile and the rest of the GPU idles: SmolLM2's q/o and down are 192 tiles of NB = 3
// on 132 SMs, 1.45 rounds' work in 2. `halves` off: whole tiles only.
Sched schedule(int64_t tiles, int64_t slots, int nb, bool halves) {
  const int64_t rest = tiles % slots;
  if (!halves || nb < 2 || rest == 0 || 2 * rest > slots) return {int(tiles), int(tiles)};
  return {int(tiles - rest), int(tiles + rest)};
}

template <class TY, int NB>
bool launch(Tensor y, const Q8Rows& act, const TernaryTensor& w, bool halves) {
  if (!kernel_runs_here<TY, NB>() || smem_bytes<NB>() > Context::get().max_smem_optin()) return false;
  const int K = int(w.cols), out = int(w.rows), N = int(act.rows());
  CUtensorMap xmap;
  if (!tma_map_u8(&xmap, act.q.raw(), uint64_t(N), uint64_t(K), kTokens, kChunk)) return false;
  Context& ctx = Context::get();
  const int ch_tiles = int(channel_tiles(out, NB)), slots = ctx.sm_count() * blocks_per_sm<TY, NB>();
  const Sched sc = schedule(tile_count(N, out, NB), slots, NB, halves);
  const bool split = sc.units > sc.dp;
  const int grid = std::min(sc.units, slots);
  auto* kernel = ternary_ws_kernel<TY, NB, false>;
  if constexpr (NB >= 2)
    if (split) kernel = ternary_ws_kernel<TY, NB, true>;
  // A persistent grid of one wave: a PDL launch where decode_pdl() is on (pdl_small).
  launch_pdl(pdl_small(grid, blocks_per_sm<TY, NB>()), kernel, dim3(unsigned(grid)), dim3(kThreads), smem_bytes<NB>(),
      xmap, static_cast<TY*>(y.raw()), static_cast<const int*>(act.sum.raw()), act.absmax.f32(),
      static_cast<const uint8_t*>(w.codes.raw()), w.wabs.f32(), N, K, out, ch_tiles, sc);
  CUDA_CHECK_LAUNCH("ternary_gemm");
  return true;
}

// The channel block width: the least time in rounds of tiles over the resident
// blocks (a last round of channel halves counts as half a round),
// where a round costs its tile's width times the blocks sharing an SM
// (NB = 1 runs two blocks an SM). A tie goes to the wider tile, which reads x once
// for more channels in its one m64n(64 NB) product. At SmolLM2's shapes (M = 8192)
// NB = 3 wins: 12.2 / 24.9 / 22.1 us against NB = 1's 14.4 / 32.5 / 27.2 and
// NB = 2's 14.5 / 28.7 / 27.1 (q/o, gate/up, down; H100, 2026-12-07, halves on). QT_W2A8_NB forces one (benchmarking, tests).
int pick_nb(int64_t n, int64_t out, bool halves) {
  if (const char* e = std::getenv("QT_W2A8_NB")) return std::clamp(std::atoi(e), 1, 3);
  const int64_t sms = Context::get().sm_count();
  int best = 3;
  double best_cost = 1e300;
  for (int nb = 3; nb >= 1; --nb) {
    const int64_t bps = min_blocks(nb), slots = sms * bps, tiles = tile_count(n, out, nb);
    const Sched sc = schedule(tiles, slots, nb, halves);
    const double rounds = double(sc.dp / slots) + (sc.units > sc.dp ? 0.5 : sc.dp % slots ? 1.0 : 0.0);
    const double cost = rounds * double(nb * bps);
    if (cost < best_cost - 1e-9) best = nb, best_cost = cost;
  }
  return best;
}

template <class TY>
bool launch_any(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  // QT_W2A8_SPLIT=0: no channel halves (benchmarking, tests); read once a call, for the width's pick and the launch.
  const char* e = std::getenv("QT_W2A8_SPLIT");
  const bool halves = !(e && e[0] == '0');
  switch (pick_nb(act.rows(), w.rows, halves)) {
    case 1: return launch<TY, 1>(y, act, w, halves);
    case 2: return launch<TY, 2>(y, act, w, halves);
    default: return launch<TY, 3>(y, act, w, halves);
  }
}

}  // namespace

bool ternary_gemm_q8(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  const int64_t K = w.cols, out = w.rows, n = act.rows();
  const bool y_ok = y.dtype() == DType::BF16 || y.dtype() == DType::F32;
  if (!y_ok || !ternary_gemm_fused_shape(out, K) || n > (int64_t(1) << 30) || out * w.codes.size(1) > (int64_t(1) << 31) ||
      w.codes.size(1) != K / 4 || reinterpret_cast<uintptr_t>(act.q.raw()) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(y.raw()) % 16 != 0 || reinterpret_cast<uintptr_t>(w.codes.raw()) % 16 != 0)
    return false;
  return y.dtype() == DType::BF16 ? launch_any<bf16>(y, act, w) : launch_any<float>(y, act, w);
}

}  // namespace qtrain::cuda
