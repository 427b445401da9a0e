// Token + learned position embedding lookup and its scatter-add backward.
#include "kernels/embedding.h"

#include <algorithm>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {

// What both backends need, before the dispatch: I32 ids on rows' device,
// N = ids.numel() a whole number of sequences of T, rows [N, C] (flat).
int64_t check_ids_rows(const Tensor& ids, const Tensor& rows, int64_t C, int T, const char* what) {
  check_on(ids, rows, (std::string(what) + " ids").c_str());
  QT_CHECK(ids.dtype() == DType::I32, std::string(what) + " ids: expected I32, got " + dtype_name(ids.dtype()));
  const int64_t N = ids.numel();
  QT_CHECK(T > 0 && N % T == 0, std::string(what) + ": " + std::to_string(N) + " ids are not sequences of T=" +
                                    std::to_string(T));
  QT_CHECK(rows.numel() == N * C, std::string(what) + ": " + shape_str(rows.shape()) + " for " + std::to_string(N) +
                                      " ids of " + std::to_string(C) + " columns");
  return N;
}

// A [rows >= min_rows, C] table on ref's device.
void check_table(const Tensor& t, const Tensor& ref, int64_t C, int64_t min_rows, const char* what) {
  check_on(t, ref, what);
  QT_CHECK(t.ndim() == 2 && t.size(1) == C && t.size(0) >= min_rows,
           std::string(what) + " " + shape_str(t.shape()) + ": expected [>=" + std::to_string(min_rows) + ", " +
               std::to_string(C) + "]");
}

// The CPU reads the ids, so it also checks their range (the GPU kernels cannot
// without a copy back).
void check_id_range(const Tensor& ids, int64_t V) {
  const int32_t* p = ids.i32();
  for (int64_t n = 0; n < ids.numel(); ++n)
    QT_CHECK(p[n] >= 0 && p[n] < V, "embedding: id " + std::to_string(p[n]) + " outside [0," + std::to_string(V) + ")");
}

}  // namespace

void embedding_forward(Tensor out, Tensor ids, Tensor wte, Tensor wpe, int T, SeqPos pos) {
  QT_CHECK(out.defined() && wte.defined(), "embedding_forward: undefined out or wte");
  const int64_t C = wte.size(-1);
  check_table(wte, out, C, 0, "embedding_forward wte");
  const int64_t N = check_ids_rows(ids, out, C, T, "embedding_forward out");
  QT_CHECK(pos.first >= 0, "embedding_forward: negative position offset " + std::to_string(pos.first));
  if (wpe.defined()) check_table(wpe, out, C, pos.extent(T), "embedding_forward wpe");
  QT_DISPATCH_CUDA(out, embedding_forward, out, ids, wte, wpe, T, pos);
  QT_CHECK(!pos.dev, "embedding_forward: a device position on the CPU");
  const int64_t pos0 = pos.first;
  cpu::check_f32(out, "embedding out");
  cpu::check_f32(wte, "embedding wte");
  if (wpe.defined()) cpu::check_f32(wpe, "embedding wpe");
  check_id_range(ids, wte.size(0));
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
  const int64_t C = check_rows_cols(dout, "embedding_backward dout").cols;
  const int64_t N = check_ids_rows(ids, dout, C, T, "embedding_backward dout");
  if (dwte.defined()) check_table(dwte, dout, C, 0, "embedding_backward dwte");
  if (dwpe.defined()) check_table(dwpe, dout, C, T, "embedding_backward dwpe");
  QT_DISPATCH_CUDA(dout, embedding_backward, dwte, dwpe, dout, ids, T);
  cpu::check_f32(dout, "embedding dout");
  const float* pd = dout.f32();
  const int32_t* pid = nullptr;
  float* pte = nullptr;
  float* ppe = nullptr;
  if (dwte.defined()) {
    cpu::check_f32(dwte, "embedding dwte");
    check_id_range(ids, dwte.size(0));
    pid = ids.i32();
    pte = dwte.f32();
  }
  if (dwpe.defined()) {
    cpu::check_f32(dwpe, "embedding dwpe");
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
