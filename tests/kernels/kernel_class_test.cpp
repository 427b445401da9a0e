#include <gtest/gtest.h>

#include "kernels/kernel_profile.h"

namespace qtrain {

TEST(KernelClass, NamesOfOurKernelsAndLibraryKernels) {
  EXPECT_EQ(kernel_class("void qtrain::cuda::(anonymous namespace)::attention_forward_kernel<64>"), "attention");
  EXPECT_EQ(kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_3_64x64x128_4x1x1"),
            "attention");
  EXPECT_EQ(kernel_class("ncclDevKernel_AllReduce_Sum_f32_RING_LL"), "nccl");
  EXPECT_EQ(kernel_class("nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NTN"), "gemm");
  EXPECT_EQ(kernel_class("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"), "gemm");
  EXPECT_EQ(kernel_class("qtrain::cuda::rmsnorm_backward_kernel"), "norm");
  EXPECT_EQ(kernel_class("qtrain::cuda::dequantize_4bit_kernel"), "quant");
  EXPECT_EQ(kernel_class("qtrain::cuda::ce_rows_kernel"), "lm-head+loss");
  EXPECT_EQ(kernel_class("qtrain::cuda::adamw_kernel"), "adamw");
  EXPECT_EQ(kernel_class("qtrain::cuda::swiglu_forward_kernel"), "pointwise");
}

}  // namespace qtrain
