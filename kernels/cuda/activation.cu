// GELU (tanh approximation, HF "gelu_new") and SwiGLU, forward and backward.
// Pointwise and memory-bound; math in F32.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace qtrain::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoef = 0.044715f;

#define QT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void gelu_forward_kernel(FloatPtr out, FloatPtr x, int64_t n) {
  QT_GRID_STRIDE(i, n) {
    float v = x.ld(i);
    float t = tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
    out.st(i, 0.5f * v * (1.f + t));
  }
}

__global__ void gelu_backward_kernel(FloatPtr dx, FloatPtr dout, FloatPtr x, int64_t n) {
  QT_GRID_STRIDE(i, n) {
    float v = x.ld(i);
    float t = tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
    float dt = kSqrt2OverPi * (1.f + 3.f * kGeluCoef * v * v) * (1.f - t * t);
    dx.st(i, dout.ld(i) * (0.5f * (1.f + t) + 0.5f * v * dt));
  }
}

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + expf(-g)); }

__global__ void swiglu_forward_kernel(FloatPtr out, FloatPtr gate, FloatPtr up, int64_t n) {
  QT_GRID_STRIDE(i, n) {
    float g = gate.ld(i);
    out.st(i, g * sigmoid(g) * up.ld(i));
  }
}

__global__ void swiglu_backward_kernel(FloatPtr dgate, FloatPtr dup, FloatPtr dout, FloatPtr gate, FloatPtr up,
                                       int64_t n) {
  QT_GRID_STRIDE(i, n) {
    float g = gate.ld(i), u = up.ld(i), d = dout.ld(i);
    float s = sigmoid(g);
    // Both outputs are computed from the inputs before either is written,
    // so dgate/dup may alias gate/up.
    float dg = d * u * s * (1.f + g * (1.f - s));
    float du = d * g * s;
    dgate.st(i, dg);
    dup.st(i, du);
  }
}

void same_numel(const Tensor& a, const Tensor& b, const char* what) {
  QT_CHECK(a.numel() == b.numel(), std::string(what) + ": " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}

}  // namespace

void gelu_forward(Tensor out, Tensor x) {
  same_numel(out, x, "gelu_forward");
  int64_t n = x.numel();
  if (!n) return;
  gelu_forward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "gelu out"), fptr(x, "gelu x"), n);
  CUDA_CHECK_LAUNCH("gelu_forward");
}

void gelu_backward(Tensor dx, Tensor dout, Tensor x) {
  same_numel(dx, x, "gelu_backward");
  same_numel(dout, x, "gelu_backward");
  int64_t n = x.numel();
  if (!n) return;
  gelu_backward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(dx, "gelu dx"), fptr(dout, "gelu dout"),
                                                                 fptr(x, "gelu x"), n);
  CUDA_CHECK_LAUNCH("gelu_backward");
}

void swiglu_forward(Tensor out, Tensor gate, Tensor up) {
  same_numel(out, gate, "swiglu_forward");
  same_numel(up, gate, "swiglu_forward");
  int64_t n = gate.numel();
  if (!n) return;
  swiglu_forward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(out, "swiglu out"), fptr(gate, "swiglu gate"),
                                                                  fptr(up, "swiglu up"), n);
  CUDA_CHECK_LAUNCH("swiglu_forward");
}

void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  same_numel(dgate, gate, "swiglu_backward");
  same_numel(dup, gate, "swiglu_backward");
  same_numel(dout, gate, "swiglu_backward");
  same_numel(up, gate, "swiglu_backward");
  int64_t n = gate.numel();
  if (!n) return;
  swiglu_backward_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(fptr(dgate, "swiglu dgate"), fptr(dup, "swiglu dup"),
                                                                   fptr(dout, "swiglu dout"), fptr(gate, "swiglu gate"),
                                                                   fptr(up, "swiglu up"), n);
  CUDA_CHECK_LAUNCH("swiglu_backward");
}

}  // namespace qtrain::cuda
