// CUDA twins of the public ops in kernels/*.h: same names, same shapes,
// same semantics (see those headers). Reached through kernels/dispatch.h.
#pragma once
#include <cstdint>

#include "kernels/adamw.h"
#include "kernels/asym4.h"
#include "kernels/quant/gguf_blocks.h"
#include "kernels/quant_matmul.h"
#include "kernels/seq_pos.h"
#include "kernels/ternary.h"
#include "kernels/tensor.h"

namespace qtrain::cuda {

void gemm(Tensor c, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta);
void add_bias(Tensor y, Tensor bias);
void bias_backward(Tensor dbias, Tensor dy);

void embedding_forward(Tensor out, Tensor ids, Tensor wte, Tensor wpe, int T, SeqPos pos);
void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor ids, int T);

void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps);
void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                        Tensor rstd);
void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, float eps);
void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd);

void gelu_forward(Tensor out, Tensor x);
void gelu_backward(Tensor dx, Tensor dout, Tensor x);
void swiglu_forward(Tensor out, Tensor gate, Tensor up);
void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up);

void rope_forward(Tensor x, float theta, SeqPos pos);
void rope_backward(Tensor dx, float theta, int pos0);

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v);
void dequantize_gguf(Tensor out, Tensor blocks, GgmlType type);
void dequantize_hqq(Tensor out, Tensor codes, Tensor scale, Tensor zero, int bits);
void dequantize_lowra(Tensor out, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax);
void lowra_matvec(Tensor y, Tensor x, Tensor codes, Tensor row_offset, Tensor bits, Tensor lut, Tensor absmax);
void attention_cached(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos);
void kv_cache_write(Tensor cache, Tensor src, SeqPos pos);
void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                        Tensor out, Tensor lse);

double lm_head_cross_entropy(Tensor dx, Tensor dw, Tensor x, Tensor w, Tensor targets, float grad_scale);

void add_inplace(Tensor y, Tensor x);
void axpy(Tensor y, float a, Tensor x);
void scale_inplace(Tensor y, float a);
void convert(Tensor dst, Tensor src);
double sum_squares(Tensor x);
void copy_cols(Tensor out, Tensor in, int64_t col_offset);
void add_cols(Tensor out, Tensor in, int64_t col_offset);
void dropout_forward(Tensor out, Tensor mask, Tensor x, float p, uint64_t seed, uint64_t offset);
void dropout_backward(Tensor dx, Tensor dout, Tensor mask, float p);
void mul_cols(Tensor out, Tensor x, Tensor v, float offset);
void ternary_fake_quant(Tensor out, Tensor w, float lambda);
void unpack_ternary(Tensor out, const TernaryTensor& w);
void ternary_matmul(Tensor y, Tensor x, const TernaryTensor& w);
void int8_act_fake_quant(Tensor out, Tensor x, float lambda);
void col_dot(Tensor g, Tensor a, Tensor b, Tensor div);
void dora_scale(Tensor scale, Tensor norm, Tensor m, Tensor wn2, Tensor B, Tensor P, Tensor Q, float s);
void sum_col_groups(Tensor out, Tensor x, int64_t k, float alpha);
void add_repeat_cols(Tensor out, Tensor x, int64_t k, float alpha);
void asym4_dequantize(Tensor out, Tensor codes, Tensor scale, Tensor zero, const Asym4Tiles& t, int64_t row0);

void dequantize_rows_4bit(Tensor out, const Quant4Tensor& w, int64_t row0);
void dequantize_rows_int8(Tensor out, const Int8Tensor& w, int64_t row0);
void matmul_4bit(Tensor y, Tensor x, const Quant4Tensor& w);
void int8_matmul(Tensor y, Tensor x, const Int8Tensor& w, float threshold);

void adamw_step(Tensor p, Tensor g, Tensor m, Tensor v, const AdamWParams& hp);

}  // namespace qtrain::cuda
