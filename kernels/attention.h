// Causal scaled-dot-product attention with grouped-query heads.
#pragma once
#include "kernels/seq_pos.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

#include <string>

namespace qtrain {

// Which GPU implementation runs attention. Auto: cuDNN's fused flash attention
// (SDPA) when libcudnn.so.9 loads and supports the shape, else qtrain's own
// kernels; Cudnn: cuDNN or a clear error; Own: qtrain's kernels only. The CPU
// reference ignores it. Set once per process (train/eval --attention).
enum class AttentionImpl { Auto, Cudnn, Own };
void set_attention_impl(AttentionImpl impl);
AttentionImpl attention_impl();
// "auto" | "cudnn" | "own"; anything else is an Error naming `what`.
AttentionImpl parse_attention_impl(const std::string& s, const std::string& what);
// What the last GPU attention call actually ran ("cudnn", "cudnn-packed" for the fused q|k|v op, "own", or "none" before
// any call): so tests and the run log can tell that the fast path was taken.
const char* last_attention_impl();
void note_attention_impl(const char* name);

// q: [B,T,Hq,D]; k, v: [B,T,Hkv,D] with Hq % Hkv == 0 (query head h reads kv head
// h / (Hq/Hkv)); out: [B,T,Hq,D]; lse: F32 [B,Hq,T], the softmax log-sum-exp,
// saved so backward need not keep the T x T matrix. Scale 1/sqrt(D).
QT_OP(void, attention_forward, (Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v))
// Decoding against a key/value cache: q, out [B,Tq,Hq,D] are the queries at
// positions pos0 .. pos0+Tq-1; kc, vc [B,Tc,Hkv,D] hold the keys/values of
// positions 0 .. pos0+Tq-1 (Tc >= pos0+Tq; rows past that are ignored). Query i
// sees keys 0 .. pos0+i (causal). No lse: nothing runs backward through it.
QT_OP(void, attention_cached, (Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos))
// The GPU decode attention's key split where its rows are too few to fill the GPU (LLaMA-7B batch 1: 32 rows on
// 132 SMs): up to this many blocks of a thread-block cluster share a row's keys and combine their parts in
// distributed shared memory (a power of two, 2..8). 0 or 1: no cluster (one block a row, or at long
// contexts the split over global memory). Default 1 (off); QT_ATTN_CLUSTER sets it at start. The CPU ignores it.
void set_attention_cluster(int max_blocks);
int attention_cluster();
// How the last GPU decode attention split a row's keys (blocks 1: not at all), so tests can tell which
// path ran.
struct AttentionSplit {
  int blocks = 0;
  bool cluster = false;
};
AttentionSplit last_attention_split();
void note_attention_split(AttentionSplit split);
// Writes this pass's keys or values src [B,T,H,D] into cache [B,Tc,H,D] at
// positions pos .. pos+T-1 of every row (one kernel, so a captured decode step
// can replay it at the next position).
QT_OP(void, kv_cache_write, (Tensor cache, Tensor src, SeqPos pos))
// dq, dk, dv overwritten (shapes of q, k, v).
QT_OP(void, attention_backward, (Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                 Tensor out, Tensor lse))

// The same attention on a fused projection's output, as GPT-2's c_attn makes it:
// qkv [B,T,3*Hq*D] holds q | k | v side by side in each row (no grouped heads).
// out [B,T,Hq,D], lse as attention_forward. Backward overwrites dqkv [B,T,3*Hq*D].
// On the GPU with cuDNN, its SDPA reads q, k, v (and writes dq, dk, dv) in place
// through strides; otherwise (the CPU reference, qtrain's own kernels) the
// columns are split into q, k, v and attention_forward/backward run on them.
void attention_forward_qkv(Tensor out, Tensor lse, Tensor qkv);
void attention_backward_qkv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse);

#ifdef QTRAIN_HAS_CUDA
namespace cuda {
// cuDNN on the packed layout: true when it ran; false when the caller must split
// (--attention own, no cuDNN, F32 tensors, or no plan for the shape).
bool attention_forward_qkv(Tensor out, Tensor lse, Tensor qkv);
bool attention_backward_qkv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse);
}  // namespace cuda
#endif

}  // namespace qtrain
