// Products with quantized frozen weights, W [rows = out, cols = in], kept in
// their packed formats on the host or the GPU:
//   Quant4Tensor: NF4/FP4 in bitsandbytes' blockwise layout (kernels/quant/nf4.h),
//                 with or without double-quantized absmax;
//   Int8Tensor:   vector-wise int8 (kernels/quant/int8.h).
// The CPU definitions are the reference (kernels/cpu/quant_matmul.cpp); the
// CUDA twins (kernels/cuda/quant_matmul.cu) give the same F32 values bit for bit.
#pragma once
#include <vector>

#include "kernels/quant/int8.h"
#include "kernels/quant/nf4.h"
#include "kernels/op.h"
#include "kernels/seq_pos.h"
#include "kernels/tensor.h"

namespace qtrain {

// The storage of a 4-bit weight as tensors (on the host or the GPU); view()
// is the quant::Nf4View the CPU reference and the CUDA kernels decode.
struct Quant4Tensor {
  quant::Code4 code = quant::Code4::NF4;
  int64_t rows = 0, cols = 0, blocksize = 64;
  bool double_quant = false;
  float offset = 0.f;   // mean absmax (double quant)
  Tensor packed;        // U8 [ceil(rows*cols/2)]
  Tensor absmax;        // F32 [blocks]                 (no double quant)
  Tensor qabsmax;       // U8 [blocks]                  (double quant)
  Tensor absmax2;       // F32 [ceil(blocks/256)]       (double quant)

  static Quant4Tensor from_packed(const quant::Packed4& p, int64_t rows, int64_t cols);  // host copy
  Quant4Tensor to(Device d) const;
  size_t bytes() const;
  quant::Nf4View view() const;  // pointers on the tensors' device, valid while they live
};

struct Int8Tensor {
  int64_t rows = 0, cols = 0;
  Tensor q;       // I8 [rows, cols]
  Tensor absmax;  // F32 [rows]

  static Int8Tensor from_rows(const quant::Int8Rows& p);
  Int8Tensor to(Device d) const;
  size_t bytes() const;
};

// out[r, :] = W[row0 + r, :] for the out.size(0) rows of out (F32 or, on
// CUDA, BF16 = the F32 value rounded to nearest even).
QT_OP(void, dequantize_rows_4bit, (Tensor out, const Quant4Tensor& w, int64_t row0))
QT_OP(void, dequantize_rows_int8, (Tensor out, const Int8Tensor& w, int64_t row0))

// y[N, rows] = x[N, cols] @ W^T with LLM.int8's decomposition (kernels/quant/int8.h):
// x columns whose max |x| exceeds `threshold` (> 0) multiply the dequantized
// weight in F32, the rest are quantized per row to int8 for an int32 product.
// CPU: the reference (F32 x, y); CUDA: an int8 tensor-core GEMM (cuBLASLt)
// with the same quantization and the same F32 epilogue.
QT_OP(void, int8_matmul, (Tensor y, Tensor x, const Int8Tensor& w, float threshold))

// y[M, rows] = x[M, cols] @ W^T for a few rows of x (decode, M <= 16): on CUDA
// one pass over the packed weight (gemv_4bit_supported says when the shape
// allows it); the CPU reference dequantizes and multiplies.
QT_OP(void, matmul_4bit, (Tensor y, Tensor x, const Quant4Tensor& w))
bool gemv_4bit_supported(const Tensor& x, const Quant4Tensor& w);
constexpr int64_t kGemv4MaxRows = 16;
// ys[i] = x @ W_i^T for up to kGemv4MaxShared weights that read the same x
// (LLaMA's q/k/v and gate/up at decode): each ys[i] is what matmul_4bit gives,
// bit for bit. On CUDA, when each would take the GEMV, one launch covers all
// their rows (kernels/cuda/quant_matmul.cu says why); the CPU reference is
// matmul_4bit per weight.
constexpr int kGemv4MaxShared = 3;
QT_OP(void, matmul_4bit_shared, (const std::vector<Tensor>& ys, Tensor x, const std::vector<const Quant4Tensor*>& ws))

// A decode layer's residual add and RMSNorm with the product set that reads the norm (LLaMA's q/k/v
// after the previous layer, gate/up after attention):
//   h = rmsnorm(x + r) * w, ys[i] = h W_i^T   (r undefined: h = rmsnorm(x) * w).
// h [N, C] and rstd [N] are written as add_rmsnorm_forward (rmsnorm_forward) writes them, ys as
// matmul_4bit_shared does. Returns the tensor holding x + r (each sum rounded to x's dtype, as
// add_inplace stores it): x itself, added in place, where the norm runs first and then the products
// (the CPU reference; CUDA in general), or a new tensor where the CUDA GEMV makes h in its staging of
// x into shared memory (one launch instead of two; x cannot be written while other blocks of it read
// x). The same bits either way.
Tensor add_rmsnorm_matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor h, Tensor rstd, Tensor x, Tensor r,
                                      Tensor w, float eps, const std::vector<const Quant4Tensor*>& ws);
// A LLaMA MLP's first half at decode, for a SwiGLU that reads nothing but the two products:
//   h = rmsnorm(x + r) * w, s = silu(h gate^T) * (h up^T)
// h, rstd and the result as add_rmsnorm_matmul_4bit_shared; s [N, rows] as swiglu_forward makes it
// from the two products stored in s's dtype. The products themselves are not kept. On CUDA, where the
// norm goes inside the GEMV, the SwiGLU goes in its epilogue too (one launch instead of two: a group
// takes 8 rows of gate and the same 8 of up); the CPU reference is the ops one after the other.
Tensor add_rmsnorm_matmul_4bit_swiglu(Tensor s, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps,
                                      const Quant4Tensor& gate, const Quant4Tensor& up);
// A LLaMA attention block's front at decode: h = rmsnorm(x + r) * w, then q, k, v = h W^T (each [B, T,
// H, D]) as add_rmsnorm_matmul_4bit_shared makes them, then RoPE on q and k and the append of k and v to
// the cache at positions pos .. pos + T - 1 as rope_append_kv does (kernels/rope.h): the same bits. On
// CUDA, where the norm goes inside the GEMV, the rest goes in its epilogue (one launch instead of two:
// a group of q's or k's rows is 8 rows i of a head and the 8 rows i + D/2 that RoPE pairs with them);
// the CPU reference is the ops one after the other. Returns the tensor holding x + r.
Tensor add_rmsnorm_matmul_4bit_rope_kv(Tensor q, Tensor k, Tensor v, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w,
                                       float eps, const Quant4Tensor& wq, const Quant4Tensor& wk, const Quant4Tensor& wv,
                                       Tensor kc, Tensor vc, float theta, SeqPos pos);
#ifdef QTRAIN_HAS_CUDA
namespace cuda {
// The one launch where it applies (the result as above); an undefined tensor, with nothing done,
// elsewhere (and where set_gemv4_norm_inside(false), or set_gemv4_swiglu_inside / _rope_inside(false)).
Tensor add_rmsnorm_matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor h, Tensor rstd, Tensor x, Tensor r,
                                      Tensor w, float eps, const std::vector<const Quant4Tensor*>& ws);
Tensor add_rmsnorm_matmul_4bit_swiglu(Tensor s, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps,
                                      const Quant4Tensor& gate, const Quant4Tensor& up);
Tensor add_rmsnorm_matmul_4bit_rope_kv(Tensor q, Tensor k, Tensor v, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w,
                                       float eps, const Quant4Tensor& wq, const Quant4Tensor& wk, const Quant4Tensor& wv,
                                       Tensor kc, Tensor vc, float theta, SeqPos pos);
}  // namespace cuda
#endif
// Which CUDA kernel the decode path runs: the streamed tensor-core one
// (default), the ring one (its weights by cp.async through shared memory; for
// the shapes it takes, else the streamed one; measured slower at most shapes;
// QT_GEMV4_RING=1 makes it the default's choice), or the earlier ones kept for
// the kernel benchmark's comparison and tests: the tensor-core one that loads
// in batches, the CUDA-core one.
enum class Gemv4Kernel { TensorCore, TensorCoreRing, TensorCoreBatched, CudaCore };
void set_gemv4_kernel(Gemv4Kernel k);
Gemv4Kernel gemv4_kernel();
// Whether add_rmsnorm_matmul_4bit_shared makes the norm inside the GEMV where it can (the default;
// QT_GEMV4_NORM=0 in the environment turns it off): off, the norm is always its own kernel (tests, measuring).
void set_gemv4_norm_inside(bool on);
bool gemv4_norm_inside();
// Whether add_rmsnorm_matmul_4bit_swiglu makes SwiGLU in the GEMV's epilogue where the norm is inside it
// (the default; QT_GEMV4_SWIGLU=0 turns it off): off, SwiGLU is its own kernel after the products.
void set_gemv4_swiglu_inside(bool on);
bool gemv4_swiglu_inside();
// The same for RoPE and the cache append in add_rmsnorm_matmul_4bit_rope_kv; off by default (QT_GEMV4_ROPE=1:
// on) until its bit-equality with the RoPE kernel in a model is confirmed on a GPU (kernels/cpu/quant_matmul.cpp).
void set_gemv4_rope_inside(bool on);
bool gemv4_rope_inside();

}  // namespace qtrain
