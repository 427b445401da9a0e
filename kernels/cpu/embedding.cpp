// Token + learned position embedding lookup and its scatter-add backward.
#include "kernels/embedding.h"

#include <algorithm>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"

namespace qtrain {

static void check_ids(const Tensor& ids, int64_t V) {
  QT_CHECK(ids.defined() && ids.dtype() == DType::I32 && !ids.is_cuda(), "embedding ids: expected host I32");
  const int32_t* p = ids.i32();
  for (int64_t n = 0; n < ids.numel(); ++n)
    QT_CHECK(p[n] >= 0 && p[n] < V, "embedding: id " + std::to_string(p[n]) + " outside [0," + std::to_string(V) + ")");
}

void embedding_forward(Tensor out, Tensor ids, Tensor wte, Tensor wpe, int T, SeqPos pos) {
  QT_DISPATCH_CUDA(out, embedding_forward, out, ids, wte, wpe, T, pos);
  QT_CHECK(!pos.dev, "embedding_forward: a device position on the CPU");
  const int64_t pos0 = pos.first;
  cpu::check_f32(out, "embedding out");
  cpu::check_f32(wte, "embedding wte");
  const int64_t N = ids.numel(), V = wte.size(0), C = wte.size(-1);
  check_shape(out, {N, C}, "embedding out");
  check_ids(ids, V);
  QT_CHECK(T > 0 && pos0 >= 0, "embedding: T must be positive, pos0 not negative");
  if (wpe.defined()) {
    cpu::check_f32(wpe, "embedding wpe");
    QT_CHECK(wpe.ndim() == 2 && wpe.size(1) == C && wpe.size(0) >= pos0 + T,
             "embedding wpe " + shape_str(wpe.shape()) + " for T=" + std::to_string(T));
  }
  const int32_t* pid = ids.i32();
  const float* pte = wte.f32();
  const float* ppe = wpe.defined() ? wpe.f32() : nullptr;
  float* po = out.f32();
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) {
    const float* e = pte + int64_t(pid[n]) * C;
    float* o = po + n * C;
    if (ppe) {
      const float* pos = ppe + (pos0 + n % T) * C;
      for (int64_t c = 0; c < C; ++c) o[c] = e[c] + pos[c];
    } else {
      for (int64_t c = 0; c < C; ++c) o[c] = e[c];
    }
  }
}

void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, Tensor ids, int T) {
  QT_DISPATCH_CUDA(dout, embedding_backward, dwte, dwpe, dout, ids, T);
  cpu::check_f32(dout, "embedding dout");
  const int64_t N = ids.numel(), C = dout.size(-1);
  check_shape(dout, {N, C}, "embedding dout");
  QT_CHECK(T > 0, "embedding: T must be positive");
  const float* pd = dout.f32();
  const int32_t* pid = nullptr;
  float* pte = nullptr;
  float* ppe = nullptr;
  if (dwte.defined()) {
    cpu::check_f32(dwte, "embedding dwte");
    QT_CHECK(dwte.ndim() == 2 && dwte.size(1) == C, "embedding dwte " + shape_str(dwte.shape()));
    check_ids(ids, dwte.size(0));
    pid = ids.i32();
    pte = dwte.f32();
  }
  if (dwpe.defined()) {
    cpu::check_f32(dwpe, "embedding dwpe");
    QT_CHECK(dwpe.ndim() == 2 && dwpe.size(1) == C && dwpe.size(0) >= T, "embedding dwpe " + shape_str(dwpe.shape()));
    ppe = dwpe.f32();
  }
  if (!pte && !ppe) return;
  // Rows repeat (same token, same position), so threads split the columns, not
  // the rows: no two threads touch one element, and sums run in row order.
  constexpr int64_t kBlock = 32;
  const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for if (N * C >= cpu::kParallelMinWork)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
    for (int64_t n = 0; n < N; ++n) {
      const float* d = pd + n * C;
      if (pte) {
        float* g = pte + int64_t(pid[n]) * C;
        for (int64_t c = c0; c < c1; ++c) g[c] += d[c];
      }
      if (ppe) {
        float* g = ppe + (n % T) * C;
        for (int64_t c = c0; c < c1; ++c) g[c] += d[c];
      }
    }
  }
}

}  // namespace qtrain
