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
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant/decode.h"
#include "kernels/quant/dynamic_map.h"

namespace qtrain::cuda {
namespace {

struct Q4Args {
  const uint8_t* packed;
  const float* absmax;    // no double quant
  const uint8_t* qabsmax; // double quant
  const float* absmax2;
  float offset;
  int64_t blocksize;
  bool dq;
  float code[16];
};

// The 16 code values and the 256-entry dynamic map in shared memory: indices
// differ per lane, which constant memory would serialize.
struct Tables {
  float code[16];
  float map[256];
};

__device__ void load_tables(Tables& t, const Q4Args& a, const float* map) {
  // Constant indices only: a run-time index into the kernel parameter a.code
  // makes the compiler copy all of Q4Args to the stack (120 bytes per thread)
  // and read every field of it from local memory in the hot loops.
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < 16; ++i) t.code[i] = a.code[i];
  }
  if (a.dq)
    for (int i = threadIdx.x; i < 256; i += blockDim.x) t.map[i] = map[i];
  __syncthreads();
}

__device__ __forceinline__ float block_absmax(const Q4Args& a, const Tables& t, int64_t blk) {
  return a.dq ? quant::dq_absmax(t.map[a.qabsmax[blk]], a.absmax2[blk / 256], a.offset) : a.absmax[blk];
}

// Any offset, any out dtype: one element per thread.
__global__ void dequant4_kernel(FloatPtr out, Q4Args a, const float* map, int64_t e0, int64_t n) {
  __shared__ Tables t;
  load_tables(t, a, map);
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e0 + k;
    out.st(k, t.code[quant::nibble(a.packed, i)] * block_absmax(a, t, i / a.blocksize));
  }
}

// BF16 out, e0 % 8 == 0, blocksize % 8 == 0, out 16-byte aligned: 8 weights
// (4 packed bytes, one absmax block) per thread and one 16-byte store.
__global__ void dequant4_bf16x8_kernel(bf16* out, Q4Args a, const float* map, int64_t e0, int64_t n8) {
  __shared__ Tables t;
  load_tables(t, a, map);
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n8; v += int64_t(gridDim.x) * blockDim.x) {
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
__global__ void __launch_bounds__(256) gemv4_kernel(FloatPtr y, const bf16* x, int M, Q4Args a, const float* map,
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

template <int MT>
void launch_gemv4(FloatPtr y, const bf16* x, int M, const Q4Args& a, const float* map, int64_t rows, int64_t cols) {
  // Loads per lane per chunk: enough to cover the row in one chunk when it is
  // short (4096 columns = 4 loads), at most 16 (64 registers of raw weights).
  const int64_t per_lane = (cols / 32 + 31) / 32;
  const unsigned blocks = unsigned((rows + 7) / 8);
  if (per_lane <= 4)
    gemv4_kernel<MT, 4><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
  else if (per_lane <= 8)
    gemv4_kernel<MT, 8><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
  else
    gemv4_kernel<MT, 16><<<blocks, 256, 0, stream()>>>(y, x, M, a, map, rows, cols);
}

__global__ void dequant_int8_kernel(FloatPtr out, const int8_t* q, const float* absmax, int64_t row0, int64_t cols,
                                    int64_t n) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
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

Q4Args args_of(const Quant4Tensor& w, const char* what) {
  QT_CHECK(w.packed.defined() && w.packed.is_cuda(), std::string(what) + ": packed weight is not on the GPU");
  Q4Args a{};
  a.packed = static_cast<const uint8_t*>(w.packed.raw());
  a.dq = w.double_quant;
  if (a.dq) {
    QT_CHECK(w.qabsmax.is_cuda() && w.absmax2.is_cuda(), std::string(what) + ": absmax is not on the GPU");
    a.qabsmax = static_cast<const uint8_t*>(w.qabsmax.raw());
    a.absmax2 = w.absmax2.f32();
  } else {
    QT_CHECK(w.absmax.is_cuda(), std::string(what) + ": absmax is not on the GPU");
    a.absmax = w.absmax.f32();
  }
  a.offset = w.offset;
  a.blocksize = w.blocksize;
  const auto& code = quant::code4_values(w.code);
  for (int i = 0; i < 16; ++i) a.code[i] = code[size_t(i)];
  return a;
}

void check_rows_out(const Tensor& out, int64_t cols, int64_t row0, int64_t rows, const char* what) {
  QT_CHECK(out.is_cuda() && out.ndim() == 2 && out.size(1) == cols && row0 >= 0 && row0 + out.size(0) <= rows,
           std::string(what) + ": out " + shape_str(out.shape()) + " does not fit rows from " + std::to_string(row0));
}

}  // namespace

void dequantize_rows_4bit(Tensor out, const Quant4Tensor& w, int64_t row0) {
  check_rows_out(out, w.cols, row0, w.rows, "dequantize_rows_4bit");
  const int64_t n = out.numel(), e0 = row0 * w.cols;
  if (n == 0) return;
  Q4Args a = args_of(w, "dequantize_rows_4bit");
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
  check_rows_out(out, w.cols, row0, w.rows, "dequantize_rows_int8");
  QT_CHECK(w.q.is_cuda() && w.absmax.is_cuda(), "dequantize_rows_int8: weight is not on the GPU");
  const int64_t n = out.numel();
  if (n == 0) return;
  dequant_int8_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "dequantize_rows_int8 out"),
                                                              static_cast<const int8_t*>(w.q.raw()), w.absmax.f32(),
                                                              row0, w.cols, n);
  CUDA_CHECK_LAUNCH("dequantize_rows_int8");
}

void matmul_4bit(Tensor y, Tensor x, const Quant4Tensor& w) {
  const int64_t M = x.numel() / w.cols;
  QT_CHECK(x.size(-1) == w.cols && y.numel() == M * w.rows, "matmul_4bit: x " + shape_str(x.shape()) + " y " +
                                                                 shape_str(y.shape()) + " W [" +
                                                                 std::to_string(w.rows) + ", " +
                                                                 std::to_string(w.cols) + "]");
  if (M == 0) return;
  if (!gemv_4bit_supported(x, w) || reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0) {
    // Any other shape: dequantize to BF16, then the dense product.
    Tensor dense = Tensor::empty({w.rows, w.cols}, DType::BF16, Device::CUDA);
    cuda::dequantize_rows_4bit(dense, w, 0);
    cuda::gemm(y, x, dense, false, true, 1.f, 0.f);
    return;
  }
  Q4Args a = args_of(w, "matmul_4bit");
  const float* map = device_dynamic_map();
  FloatPtr py = fptr(y, "matmul_4bit y");
  const bf16* px = static_cast<const bf16*>(x.raw());
  const int m = int(M);
  if (M <= 1)
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

}  // namespace qtrain::cuda
