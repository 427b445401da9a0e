// Rotary position embedding, HF "rotate_half" convention: dimension i pairs
// with i + D/2 (not interleaved), inv_freq[i] = theta^(-2i/D), position = pos0 + t
// (pos0 > 0 when decoding after cached tokens).
#pragma once
#include "kernels/seq_pos.h"
#include "kernels/op.h"
#include "kernels/tensor.h"

namespace qtrain {

// x: [B,T,H,D], rotated in place.
QT_OP(void, rope_forward, (Tensor x, float theta, SeqPos pos = {}))
// dx: [B,T,H,D], rotated back in place (the transpose of the forward rotation).
QT_OP(void, rope_backward, (Tensor dx, float theta, int pos0 = 0))

// A layer's queries q [B,T,Hq,D] and keys k [B,T,Hkv,D] rotated in place, as
// rope_forward on each (the same bits), in one launch on the GPU.
QT_OP(void, rope_qk_forward, (Tensor q, Tensor k, float theta, SeqPos pos = {}))
QT_OP(void, rope_qk_backward, (Tensor dq, Tensor dk, float theta, int pos0 = 0))
// A decode pass's RoPE and cache append in one launch: rope_qk_forward(q, k),
// then kv_cache_write(kc, k) and kv_cache_write(vc, v) (kernels/attention.h).
// At batch 1 these four ops were four launches of ~1.5 us around 1 us of work
// each, 32 times per LLaMA-7B token.
QT_OP(void, rope_append_kv, (Tensor q, Tensor k, Tensor v, Tensor kc, Tensor vc, float theta, SeqPos pos))

}  // namespace qtrain
