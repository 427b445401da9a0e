// Attention of a few new queries against a key/value cache (decoding): the
// plain two-pass softmax per query row, in F32. One query row at a time is
// all a decode step has, so no blocking is needed.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

// The shape and position checks both backends need run here, before the
// dispatch; the CUDA twin adds only its head-dim limit.
void attention_cached(Tensor out, Tensor q, Tensor kc, Tensor vc, SeqPos pos) {
  QT_CHECK(q.defined() && kc.defined() && q.ndim() == 4 && kc.ndim() == 4,
           "attention_cached: q and the caches must be [B,T,H,D]");
  const int64_t B = q.size(0), Tq = q.size(1), Hq = q.size(2), D = q.size(3), Tc = kc.size(1), Hkv = kc.size(2);
  QT_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention_cached: Hq " + std::to_string(Hq) + " is not a multiple of the cache's " +
                                         std::to_string(Hkv) + " heads");
  QT_CHECK(pos.first >= 0 && pos.first + Tq <= Tc && (!pos.dev || pos.limit <= Tc),
           "attention_cached: positions " + std::to_string(pos.first) + ".." + std::to_string(pos.extent(int(Tq))) +
               " exceed the cache's " + std::to_string(Tc));
  check_shaped(kc, q, {B, Tc, Hkv, D}, "attention_cached k cache");
  check_shaped(vc, q, {B, Tc, Hkv, D}, "attention_cached v cache");
  check_like(out, q, "attention_cached out");
  QT_DISPATCH_CUDA(q, attention_cached, out, q, kc, vc, pos);
  QT_CHECK(!pos.dev, "attention_cached: a device position on the CPU");
  const int64_t pos0 = pos.first;
  cpu::check_f32(q, "attention_cached q");
  cpu::check_f32(kc, "attention_cached k cache");
  cpu::check_f32(vc, "attention_cached v cache");
  cpu::check_f32(out, "attention_cached out");
  const int64_t group = Hq / Hkv;
  const float scale = 1.f / std::sqrt(float(D));
  const float *pq = q.f32(), *pk = kc.f32(), *pv = vc.f32();
  float* po = out.f32();
#pragma omp parallel if (B * Hq * Tq * (pos0 + Tq) * D >= cpu::kParallelMinWork)
  {
    std::vector<float> p(size_t(pos0 + Tq));
#pragma omp for collapse(3)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < Tq; ++t)
        for (int64_t h = 0; h < Hq; ++h) {
          const int64_t nk = pos0 + t + 1, hk = h / group;
          const float* qr = pq + ((b * Tq + t) * Hq + h) * D;
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < nk; ++j) {
            const float* kr = pk + ((b * Tc + j) * Hkv + hk) * D;
            float s = 0.f;
            for (int64_t d = 0; d < D; ++d) s += qr[d] * kr[d];
            p[size_t(j)] = s * scale;
            mx = std::max(mx, p[size_t(j)]);
          }
          float sum = 0.f;
          for (int64_t j = 0; j < nk; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
          float* o = po + ((b * Tq + t) * Hq + h) * D;
          for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
          for (int64_t j = 0; j < nk; ++j) {
            const float w = p[size_t(j)] / sum;
            const float* vr = pv + ((b * Tc + j) * Hkv + hk) * D;
            for (int64_t d = 0; d < D; ++d) o[d] += w * vr[d];
          }
        }
  }
}

// The argument checks both backends need run here, before the dispatch; the
// CUDA twin adds only its alignment requirement.
void kv_cache_write(Tensor cache, Tensor src, SeqPos pos) {
  check_kv_append(cache, src, pos, "kv_cache_write");
  const int64_t B = src.size(0), T = src.size(1), Tc = cache.size(1), row = src.size(2) * src.size(3);
  QT_DISPATCH_CUDA(cache, kv_cache_write, cache, src, pos);
  QT_CHECK(!pos.dev, "kv_cache_write: a device position on the CPU");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t dst = (b * Tc + pos.first) * row, from = b * T * row, n = T * row;
    cache.flat(dst, dst + n).copy_from(src.flat(from, from + n));
  }
}

}  // namespace qtrain
