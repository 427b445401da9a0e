// Rotary position embedding, HF rotate_half convention, in place. One thread
// per (row, pair i): x[i], x[i + D/2] rotate by angle pos * inv_freq[i], with
// inv_freq and the angle computed in F32 exactly as HF does (precise sincosf:
// angles reach thousands of radians, where fast intrinsics lose accuracy).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace qtrain::cuda {
namespace {

// sign = +1 forward (rotate by +angle), -1 backward (the transpose).
__global__ void rope_kernel(FloatPtr x, int64_t rows, int T, int H, int D, float theta, float sign) {
  int half = D / 2;
  int64_t n = rows * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t row = idx / half;
    int i = int(idx % half);
    int pos = int((row / H) % T);
    float inv_freq = 1.0f / powf(theta, float(2 * i) / float(D));
    float s, c;
    sincosf(float(pos) * inv_freq, &s, &c);
    s *= sign;
    int64_t j = row * D + i;
    float x1 = x.ld(j), x2 = x.ld(j + half);
    x.st(j, x1 * c - x2 * s);
    x.st(j + half, x2 * c + x1 * s);
  }
}

void rope(Tensor x, float theta, float sign, const char* what) {
  QT_CHECK(x.ndim() == 4, std::string(what) + ": x must be [B,T,H,D], got " + shape_str(x.shape()));
  int64_t T = x.size(1), H = x.size(2), D = x.size(3);
  QT_CHECK(D % 2 == 0, std::string(what) + ": head dim must be even");
  int64_t rows = x.numel() / D;
  int64_t n = rows * (D / 2);
  if (!n) return;
  rope_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(x, what), rows, int(T), int(H), int(D), theta, sign);
  CUDA_CHECK_LAUNCH(what);
}

}  // namespace

void rope_forward(Tensor x, float theta) { rope(x, theta, 1.f, "rope_forward"); }
void rope_backward(Tensor dx, float theta) { rope(dx, theta, -1.f, "rope_backward"); }

}  // namespace qtrain::cuda
