// Rotary position embedding, HF LLaMA convention (rotate_half: dim i pairs
// with i + D/2). The angle table is computed exactly as HF computes it, all in
// fp32: inv_freq = 1 / theta^(float(2i) / D), angle = float(t) * inv_freq.
#include "kernels/rope.h"

#include "kernels/attention.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"

namespace qtrain {

namespace {

struct RopeTable {
  std::vector<float> cos, sin;  // [T, D/2]
};

RopeTable make_table(int64_t T, int64_t D, float theta) {
  const int64_t half = D / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(D);  // arange(0, D, 2).float() / D
    inv_freq[size_t(i)] = 1.f / std::pow(theta, exponent);
  }
  RopeTable tab{std::vector<float>(size_t(T * half)), std::vector<float>(size_t(T * half))};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(t) * inv_freq[size_t(i)];
      tab.cos[size_t(t * half + i)] = std::cos(angle);
      tab.sin[size_t(t * half + i)] = std::sin(angle);
    }
  return tab;
}

// Rotates every [D] vector of x by +angle (forward) or -angle (backward: the
// rotation is orthogonal, so its transpose is the inverse rotation).
void rotate(Tensor x, float theta, int pos0, float direction, const char* what) {
  cpu::check_f32(x, what);
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  const RopeTable tab = make_table(pos0 + T, D, theta);
  float* px = x.f32();
#pragma omp parallel for collapse(2) if (B * T * H * D >= cpu::kParallelMinWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* c = tab.cos.data() + (pos0 + t) * half;
      const float* s = tab.sin.data() + (pos0 + t) * half;
      for (int64_t h = 0; h < H; ++h) {
        float* v = px + ((b * T + t) * H + h) * D;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half], sn = direction * s[i];
          // x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1]
          v[i] = x1 * c[i] - x2 * sn;
          v[i + half] = x2 * c[i] + x1 * sn;
        }
      }
    }
}

// What both backends need, checked before the dispatch: x is [B,T,H,D] with
// an even head dim, and the positions start at 0 or later.
void check_rope(const Tensor& x, int pos0, const char* what) {
  QT_CHECK(x.defined(), std::string(what) + ": undefined tensor");
  QT_CHECK(x.ndim() == 4, std::string(what) + ": expected [B,T,H,D], got " + shape_str(x.shape()));
  QT_CHECK(x.size(3) % 2 == 0, std::string(what) + ": head dim must be even, got " + shape_str(x.shape()));
  QT_CHECK(pos0 >= 0, std::string(what) + ": negative position offset " + std::to_string(pos0));
}

}  // namespace

void rope_forward(Tensor x, float theta, SeqPos pos) {
  check_rope(x, pos.first, "rope_forward x");
  QT_DISPATCH_CUDA(x, rope_forward, x, theta, pos);
  QT_CHECK(!pos.dev, "rope_forward: a device position on the CPU");
  rotate(x, theta, pos.first, 1.f, "rope_forward x");
}

void rope_backward(Tensor dx, float theta, int pos0) {
  check_rope(dx, pos0, "rope_backward dx");
  QT_DISPATCH_CUDA(dx, rope_backward, dx, theta, pos0);
  rotate(dx, theta, pos0, -1.f, "rope_backward dx");
}

// q and k: one sequence of heads each, with the same B and T.
void check_qk(const Tensor& q, const Tensor& k, int pos0, const char* what) {
  check_rope(q, pos0, what);
  check_rope(k, pos0, what);
  QT_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) && q.dtype() == k.dtype() &&
               q.device() == k.device(),
           std::string(what) + ": q " + shape_str(q.shape()) + " and k " + shape_str(k.shape()) +
               " need one B, T, head dim, dtype and device");
}

void rope_qk_forward(Tensor q, Tensor k, float theta, SeqPos pos) {
  check_qk(q, k, pos.first, "rope_qk_forward");
  QT_DISPATCH_CUDA(q, rope_qk_forward, q, k, theta, pos);
  rope_forward(q, theta, pos);
  rope_forward(k, theta, pos);
}

void rope_qk_backward(Tensor dq, Tensor dk, float theta, int pos0) {
  check_qk(dq, dk, pos0, "rope_qk_backward");
  QT_DISPATCH_CUDA(dq, rope_qk_backward, dq, dk, theta, pos0);
  rope_backward(dq, theta, pos0);
  rope_backward(dk, theta, pos0);
}

void rope_append_kv(Tensor q, Tensor k, Tensor v, Tensor kc, Tensor vc, float theta, SeqPos pos) {
  check_qk(q, k, pos.first, "rope_append_kv");
  QT_CHECK(v.defined() && v.shape() == k.shape() && v.dtype() == k.dtype() && v.device() == k.device(),
           "rope_append_kv: v " + (v.defined() ? shape_str(v.shape()) : std::string("undefined")) +
               " must match k " + shape_str(k.shape()));
  // kv_cache_write's checks, made here before q and k are rotated.
  check_kv_append(kc, k, pos, "rope_append_kv");
  check_kv_append(vc, v, pos, "rope_append_kv");
  QT_CHECK(kc.shape() == vc.shape() && kc.size(2) == k.size(2) && kc.size(3) == k.size(3),
           "rope_append_kv: caches " + shape_str(kc.shape()) + " and " + shape_str(vc.shape()) + " for keys " +
               shape_str(k.shape()));
  QT_DISPATCH_CUDA(q, rope_append_kv, q, k, v, kc, vc, theta, pos);
  rope_qk_forward(q, k, theta, pos);
  kv_cache_write(kc, k, pos);
  kv_cache_write(vc, v, pos);
}

}  // namespace qtrain
