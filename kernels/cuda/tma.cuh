// Hopper's bulk tensor copies (TMA, cp.async.bulk.tensor) and the shared-memory
// barriers (mbarrier) that count their bytes, for warp-specialized kernels: a
// producer fills a ring of shared stages, consumers wait on a stage's "full"
// barrier and give it back on its "empty" one. A fresh barrier is in phase 0,
// and waiting on parity 1 returns at once, so a producer waits on
// (round & 1) ^ 1 and a consumer on round & 1 (round = iteration / stages).
#pragma once
#include <cuda.h>  // CUtensorMap (types only: the encoder comes through the runtime)

#include <cstdint>

namespace qtrain::cuda {

// A 2-D tensor map over a row-major U8 matrix [rows, cols] (row stride cols,
// a multiple of 16), boxes of box_rows x box_cols bytes, 128-byte swizzled in
// shared memory (box_cols <= 128), the part past the matrix filled with zeros.
// False when the driver has no encoder or refuses the shape.
bool tma_map_u8(CUtensorMap* map, const void* base, uint64_t rows, uint64_t cols, uint32_t box_rows, uint32_t box_cols);

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
// The inits visible to the other threads' and the TMA unit's barrier operations.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// One arrival that also announces bytes a bulk copy will deliver to this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nQT_MBAR_WAIT:\n"
      "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra QT_MBAR_WAIT;\n}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}
// A box of a 2-D map at (col, row) into shared memory; completes its bytes on bar.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int col, int row, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(col), "r"(row), "r"(smem_u32(bar))
      : "memory");
}

}  // namespace qtrain::cuda
