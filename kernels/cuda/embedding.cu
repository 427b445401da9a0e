// Token + position embedding. Backward: dwte rows gather with F32 atomics
// (repeated tokens collide rarely at vocab sizes like 50k); dwpe is a plain
// per-(t, c) sum over the batch, no atomics.
#include "kernels/cuda/common.cuh"
#include "kernels/embedding.h"

namespace qtrain::cuda {
namespace {

__global__ void embedding_forward_kernel(FloatPtr out, const int32_t* ids, FloatPtr wte, FloatPtr wpe, int64_t N,
                                         int64_t C, int T, int pos0, const int32_t* pos_dev) {
  if (pos_dev) pos0 = *pos_dev;  // a replayed decode step
  QT_GRID_STRIDE(i, N * C) {
    int64_t n = i / C, c = i % C;
    float v = wte.ld(int64_t(ids[n]) * C + c);
    if (wpe.p) v += wpe.ld(int64_t(pos0 + n % T) * C + c);
    out.st(i, v);
  }
}

__global__ void dwte_kernel(float* dwte, FloatPtr dout, const int32_t* ids, int64_t N, int64_t C) {
  QT_GRID_STRIDE(i, N * C) {
    int64_t n = i / C, c = i % C;
    atomicAdd(dwte + int64_t(ids[n]) * C + c, dout.ld(i));
  }
}

__global__ void dwpe_kernel(float* dwpe, FloatPtr dout, int64_t B, int64_t T, int64_t C) {
  QT_GRID_STRIDE(i, T * C) {
    float s = 0.f;
    for (int64_t b = 0; b < B; ++b) s += dout.ld(b * T * C + i);
    dwpe[i] += s;
  }
}

}  // namespace

void embedding_forward(Tensor out, Tensor ids, Tensor wte, Tensor wpe, int T, SeqPos pos) {
  const int pos0 = pos.first;
  int64_t N = ids.numel(), C = wte.size(-1);  // shapes checked by the public op (kernels/cpu/embedding.cpp)
  if (!N) return;
  FloatPtr pe = wpe.defined() ? fptr(wpe, "embedding wpe") : FloatPtr{nullptr, DType::F32};
  embedding_forward_kernel<<<grid_for(N * C, 256), 256, 0, stream()>>>(fptr(out, "embedding out"), ids.i32(),
                                                                        fptr(wte, "embedding wte"), pe, N, C, T, pos0, pos.dev);
  CUDA_CHECK_LAUNCH("embedding_forward");
}

void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor ids, int T) {
  int64_t N = ids.numel(), C = dout.size(-1);  // shapes checked by the public op (kernels/cpu/embedding.cpp)
  if (!N) return;
  FloatPtr g = fptr(dout, "embedding dout");
  if (dwte.defined()) {
    check_cuda_dtype(dwte, DType::F32, "embedding_backward dwte");
    dwte_kernel<<<grid_for(N * C, 256), 256, 0, stream()>>>(dwte.f32(), g, ids.i32(), N, C);
    CUDA_CHECK_LAUNCH("embedding_backward dwte");
  }
  if (dwpe.defined()) {
    check_cuda_dtype(dwpe, DType::F32, "embedding_backward dwpe");
    dwpe_kernel<<<grid_for(int64_t(T) * C, 256), 256, 0, stream()>>>(dwpe.f32(), g, N / T, T, C);
    CUDA_CHECK_LAUNCH("embedding_backward dwpe");
  }
}

}  // namespace qtrain::cuda
