// GELU (tanh approximation, HF "gelu_new") and SwiGLU, forward and backward.
// Pointwise and memory-bound; math in F32, on kernels/cuda/pointwise.cuh
// (16-byte BF16 access where possible).
#include "kernels/cuda/common.cuh"
#include "kernels/activation.h"
#include "kernels/cuda/pointwise.cuh"
#include "kernels/cuda/swiglu.cuh"

namespace qtrain::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoef = 0.044715f;

struct GeluForward {
  __device__ void operator()(const float* x, float* y) const {
    float v = x[0];
    float t = tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
    y[0] = 0.5f * v * (1.f + t);
  }
};

struct GeluBackward {  // in: dout, x
  __device__ void operator()(const float* in, float* y) const {
    float d = in[0], v = in[1];
    float t = tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
    float dt = kSqrt2OverPi * (1.f + 3.f * kGeluCoef * v * v) * (1.f - t * t);
    y[0] = d * (0.5f * (1.f + t) + 0.5f * v * dt);
  }
};

struct SwigluForward {  // in: gate, up
  __device__ void operator()(const float* in, float* y) const { y[0] = swiglu_value(in[0], in[1]); }
};

struct SwigluBackward {  // in: dout, gate, up; out: dgate, dup
  __device__ void operator()(const float* in, float* y) const {
    float d = in[0], g = in[1], u = in[2];
    float s = sigmoid(g);
    y[0] = d * u * s * (1.f + g * (1.f - s));
    y[1] = d * g * s;
  }
};

}  // namespace

void gelu_forward(Tensor out, Tensor x) {
  launch_pointwise<1, 1>({x}, {out}, x.numel(), GeluForward{}, "gelu_forward");
}

void gelu_backward(Tensor dx, Tensor dout, Tensor x) {
  launch_pointwise<2, 1>({dout, x}, {dx}, x.numel(), GeluBackward{}, "gelu_backward");
}

void swiglu_forward(Tensor out, Tensor gate, Tensor up) {
  launch_pointwise<2, 1>({gate, up}, {out}, gate.numel(), SwigluForward{}, "swiglu_forward");
}

// dgate/dup may alias gate/up: both outputs are computed from the inputs
// before either is written.
void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  launch_pointwise<3, 2>({dout, gate, up}, {dgate, dup}, gate.numel(), SwigluBackward{}, "swiglu_backward");
}

}  // namespace qtrain::cuda
