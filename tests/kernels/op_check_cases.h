// Calls that break an op's shape, length, range or position rules, built on
// one device. Every public op checks these before it forwards a GPU tensor to
// its CUDA twin (kernels/op_checks.h), so a call fails with the same message
// on either device: tests/kernels/op_checks_test.cpp runs them on the CPU,
// tests/cuda/op_checks_test.cpp on the GPU. Float operands are BF16, which the
// CPU reference refuses: a shape message (not a dtype one) shows the shared
// check ran first.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/error.h"
#include "kernels/lora_decode.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/svd.h"

namespace qtrain::testing {

struct OpCheckCase {
  const char* name;
  const char* message;  // a part of the error the call must raise
  std::function<void()> call;
};

inline std::vector<OpCheckCase> op_check_cases(Device d) {
  auto t = [d](const Shape& s, DType dt = DType::BF16) { return Tensor::zeros(s, dt, d); };
  auto f32 = [t](const Shape& s) { return t(s, DType::F32); };
  return {
      {"layernorm_out_shape", "layernorm out: shape [4,7], expected [4,8]",
       [=] { layernorm_forward(t({4, 7}), f32({4}), f32({4}), t({4, 8}), t({8}), t({8}), 1e-5f); }},
      {"rmsnorm_weight_length", "rmsnorm w: 7 elements, expected 8",
       [=] { rmsnorm_forward(t({4, 8}), f32({4}), t({4, 8}), t({7}), 1e-5f); }},
      {"rmsnorm_backward_rstd_length", "rmsnorm rstd: 3 elements, expected 4",
       [=] { rmsnorm_backward(t({4, 8}), Tensor(), t({4, 8}), t({4, 8}), t({8}), f32({3})); }},
      {"gelu_out_size", "gelu out: [5] has 5 elements, expected 6",
       [=] { gelu_forward(t({5}), t({2, 3})); }},
      {"swiglu_backward_dup_size", "swiglu dup", [=] { swiglu_backward(t({6}), t({7}), t({6}), t({6}), t({6})); }},
      {"adamw_buffer_size", "adamw_step v", [=] { adamw_step(f32({8}), f32({8}), f32({8}), f32({9}), {}); }},
      {"adamw_step_zero", "step is 1-based",
       [=] {
         AdamWParams hp;
         hp.step = 0;
         adamw_step(f32({8}), f32({8}), f32({8}), f32({8}), hp);
       }},
      {"axpy_size", "axpy x", [=] { axpy(t({8}), 1.f, t({9})); }},
      {"copy_cols_window", "copy_cols: narrow[2,4] does not fit wide[2,6] at column 3",
       [=] { copy_cols(t({2, 4}), t({2, 6}), 3); }},
      {"dropout_p", "p must be in [0, 1)",
       [=] { dropout_forward(t({8}), t({8}, DType::U8), t({8}), 1.f, 1, 0); }},
      {"add_rmsnorm_residual_shape", "add_rmsnorm r: shape [4,7], expected [4,8]",
       [=] { add_rmsnorm_forward(t({4, 8}), f32({4}), t({4, 8}), t({4, 7}), t({8}), 1e-5f); }},
      {"add_layernorm_mean_length", "add_layernorm mean: 3 elements, expected 4",
       [=] { add_layernorm_forward(t({4, 8}), f32({3}), f32({4}), t({4, 8}), t({4, 8}), t({8}), t({8}), 1e-5f); }},
      {"rope_qk_sequences", "need one B, T, head dim, dtype and device",
       [=] { rope_qk_forward(t({1, 2, 4, 8}), t({1, 3, 2, 8}), 1e4f); }},
      {"rope_append_kv_past_cache", "rope_append_kv: positions 4..5 exceed the cache's 4",
       [=] { rope_append_kv(t({1, 1, 4, 8}), t({1, 1, 2, 8}), t({1, 1, 2, 8}), t({1, 4, 2, 8}), t({1, 4, 2, 8}), 1e4f, 4); }},
      {"rope_append_kv_v_shape", "rope_append_kv: v [1,1,1,8] must match k [1,1,2,8]",
       [=] { rope_append_kv(t({1, 1, 4, 8}), t({1, 1, 2, 8}), t({1, 1, 1, 8}), t({1, 4, 2, 8}), t({1, 4, 2, 8}), 1e4f, 0); }},
      {"rope_odd_head_dim", "head dim must be even", [=] { rope_forward(t({1, 2, 2, 5}), 1e4f, 0); }},
      {"rope_negative_position", "negative position offset", [=] { rope_backward(t({1, 2, 2, 4}), 1e4f, -1); }},
      {"embedding_ids_not_sequences", "are not sequences of T=2",
       [=] { embedding_forward(t({5, 4}), t({5}, DType::I32), t({10, 4}), Tensor(), 2); }},
      {"embedding_wpe_too_short", "embedding_forward wpe [3,4]: expected [>=4, 4]",
       [=] { embedding_forward(t({4, 4}), t({4}, DType::I32), t({10, 4}), t({3, 4}), 2, SeqPos(2)); }},
      {"attention_heads", "Hkv dividing Hq",
       [=] { attention_forward(t({1, 4, 3, 8}), f32({1, 3, 4}), t({1, 4, 3, 8}), t({1, 4, 2, 8}), t({1, 4, 2, 8})); }},
      {"attention_lse_length", "attention_forward lse: 11 elements, expected 12",
       [=] { attention_forward(t({1, 4, 3, 8}), f32({11}), t({1, 4, 3, 8}), t({1, 4, 1, 8}), t({1, 4, 1, 8})); }},
      {"attention_cached_positions", "exceed the cache's 4",
       [=] { attention_cached(t({1, 2, 2, 8}), t({1, 2, 2, 8}), t({1, 4, 2, 8}), t({1, 4, 2, 8}), SeqPos(3)); }},
      {"kv_cache_write_positions", "exceed the cache's 4",
       [=] { kv_cache_write(t({1, 4, 2, 8}), t({1, 2, 2, 8}), SeqPos(3)); }},
      {"gemm_inner_dims", "gemm: c [2,3], a [2,4], b [5,3]",
       [=] { gemm(t({2, 3}), t({2, 4}), t({5, 3}), false, false, 1.f, 0.f); }},
      {"add_bias_length", "add_bias bias: 2 elements, expected 3", [=] { add_bias(t({4, 3}), t({2})); }},
      {"cross_entropy_w_cols", "cross_entropy: w [10,5] for x [4,6]",
       [=] { lm_head_cross_entropy(Tensor(), Tensor(), t({4, 6}), t({10, 5}), t({4}, DType::I32), 1.f); }},
      {"low_rank_svd_a_shape", "low_rank_svd a: shape [2,5], expected [2,6]",
       [=] { low_rank_svd(f32({8, 2}), f32({2, 5}), f32({8, 6})); }},
      {"lora_decode_a_width", "lora_decode_shared: A 0 must be [r, 6]",
       [=] { lora_decode_shared({t({1, 4})}, t({1, 6}), {t({2, 5})}, {t({4, 2})}, {1.f}); }},
      {"lora_decode_y_shape", "lora_decode_shared y: shape [1,3], expected [1,4]",
       [=] { lora_decode_shared({t({1, 3})}, t({1, 6}), {t({2, 6})}, {t({4, 2})}, {1.f}); }},
  };
}

// Runs every case on device d: each must raise an Error holding its message,
// and not `absent` when given (a message of the backend's own checks).
inline void expect_each_case_fails(Device d, const char* absent = nullptr) {
  for (const OpCheckCase& c : op_check_cases(d)) {
    SCOPED_TRACE(c.name);
    try {
      c.call();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(c.message), std::string::npos) << what;
      if (absent) EXPECT_EQ(what.find(absent), std::string::npos) << what;
    }
  }
}

}  // namespace qtrain::testing
