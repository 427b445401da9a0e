// BitNet quantizers: the fp32 references (kernels/ternary.h).
#include "kernels/ternary.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/norm.h"
#include "kernels/op_checks.h"
#include "kernels/quant/decode.h"
#include "kernels/quant/ternary.h"

namespace qtrain {

void ternary_fake_quant(Tensor out, Tensor w, float lambda) {
  QT_CHECK(w.defined(), "ternary_fake_quant: undefined w");
  check_numel_like(out, w, "ternary_fake_quant out");
  QT_DISPATCH_CUDA(w, ternary_fake_quant, out, w, lambda);
  cpu::check_f32(w, "ternary_fake_quant w");
  cpu::check_f32(out, "ternary_fake_quant out");
  const int64_t n = w.numel();
  const float* pw = w.f32();
  const float inv = 1.f / quant::ternary_scale(pw, n);
  float* po = out.f32();
#pragma omp parallel for if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float q = float(quant::ternary_level(pw[i], inv)) / inv;
    po[i] = (1.f - lambda) * pw[i] + lambda * q;  // exact at both ends (pure w, pure q)
  }
}

void int8_act_fake_quant(Tensor out, Tensor x, float lambda) {
  QT_CHECK(x.defined(), "int8_act_fake_quant: undefined x");
  check_numel_like(out, x, "int8_act_fake_quant out");
  QT_DISPATCH_CUDA(x, int8_act_fake_quant, out, x, lambda);
  cpu::check_f32(x, "int8_act_fake_quant x");
  cpu::check_f32(out, "int8_act_fake_quant out");
  const cpu::MatShape m = cpu::as_matrix(x, "int8_act_fake_quant x");
  const float* px = x.f32();
  float* po = out.f32();
#pragma omp parallel for if (m.rows * m.cols >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < m.rows; ++r) {
    const float* xr = px + r * m.cols;
    float mx = 0.f;
    for (int64_t c = 0; c < m.cols; ++c) mx = std::max(mx, std::fabs(xr[c]));
    const float s = 127.f / std::max(mx, 1e-5f);
    for (int64_t c = 0; c < m.cols; ++c) {
      const float q = std::clamp(std::nearbyint(xr[c] * s), -128.f, 127.f) / s;
      po[r * m.cols + c] = (1.f - lambda) * xr[c] + lambda * q;
    }
  }
}

TernaryTensor TernaryTensor::from_packed(const quant::PackedTernary& p) {
  TernaryTensor t;
  t.rows = p.rows, t.cols = p.cols, t.scale = p.scale;
  t.codes = Tensor::from_elements(p.codes, {p.rows, quant::PackedTernary::row_bytes(p.cols)}, DType::U8);
  t.wabs = Tensor::from_elements(std::vector<float>(size_t(p.rows), 127.f * p.scale), {p.rows}, DType::F32);
  return t;
}

TernaryTensor TernaryTensor::to(Device d) const {
  TernaryTensor t = *this;
  t.codes = codes.to(d), t.wabs = wabs.to(d);
  return t;
}

size_t TernaryTensor::bytes() const { return codes.nbytes() + sizeof(float); }

void unpack_ternary(Tensor out, const TernaryTensor& w) {
  QT_CHECK(out.defined() && out.ndim() == 2 && out.size(0) == w.rows && out.size(1) == w.cols,
           "unpack_ternary: out must be [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "], got " +
               shape_str(out.shape()));
  check_on(w.codes, out, "unpack_ternary codes");
  QT_DISPATCH_CUDA(out, unpack_ternary, out, w);
  QT_CHECK(out.dtype() == DType::I8 || out.dtype() == DType::F32, "unpack_ternary: CPU out must be I8 or F32");
  const int64_t rb = w.codes.size(1);
  const auto* codes = static_cast<const uint8_t*>(w.codes.raw());
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) {
      const int t = quant::ternary_at(codes + r * rb, c);
      if (out.dtype() == DType::I8)
        static_cast<int8_t*>(out.raw())[r * w.cols + c] = int8_t(t);
      else
        out.f32()[r * w.cols + c] = float(t) * w.scale;
    }
}

Q8Rows Q8Rows::empty(int64_t n, int64_t cols, Device d) {
  return {Tensor::empty({n, cols}, DType::I8, d), Tensor::empty({n}, DType::F32, d), Tensor::empty({n}, DType::I32, d)};
}

namespace {
void check_q8(const Q8Rows& act, const Tensor& ref, int64_t rows, int64_t cols, const char* op) {
  const std::string what(op);
  check_shaped(act.q, ref, {rows, cols}, (what + " act.q").c_str());
  check_len(act.absmax, ref, rows, (what + " act.absmax").c_str());
  check_len(act.sum, ref, rows, (what + " act.sum").c_str());
  QT_CHECK(act.q.dtype() == DType::I8 && act.absmax.dtype() == DType::F32 && act.sum.dtype() == DType::I32,
           what + ": act must be I8 codes, F32 absmax, I32 sums");
}
}  // namespace

void quantize_act_q8(const Q8Rows& act, Tensor x, bool subln) {
  const RowsCols m = check_rows_cols(x, "quantize_act_q8 x", true);
  check_q8(act, x, m.rows, m.cols, "quantize_act_q8");
  QT_DISPATCH_CUDA(x, quantize_act_q8, act, x, subln);
  cpu::check_f32(x, "quantize_act_q8 x");
  Tensor xn = x;
  if (subln) {  // the composition itself: SubLn::forward at lambda 1
    xn = Tensor::empty(x.shape(), DType::F32);
    rmsnorm_forward(xn, Tensor(), x, Tensor::from_elements(std::vector<float>(size_t(m.cols), 1.f), {m.cols}, DType::F32),
                    kSubLnEps);
  }
  const float* px = xn.f32();
  auto* q = static_cast<int8_t*>(act.q.raw());
  float* absmax = act.absmax.f32();
  auto* sum = static_cast<int32_t*>(act.sum.raw());
  for (int64_t r = 0; r < m.rows; ++r) {  // LLM.int8's row quantization at threshold 0 (kernels/quant/int8.cpp)
    const float* xr = px + r * m.cols;
    float am = 0.f;
    for (int64_t c = 0; c < m.cols; ++c) am = std::max(am, std::fabs(xr[c]));
    const float scale = am > 0.f ? 127.f / am : 0.f;
    int32_t s = 0;
    for (int64_t c = 0; c < m.cols; ++c) {
      const int8_t v = int8_t(std::nearbyint(xr[c] * scale));
      q[r * m.cols + c] = v;
      s += v;
    }
    absmax[r] = am;
    sum[r] = s;
  }
}

void ternary_matmul_q8(Tensor y, const Q8Rows& act, const TernaryTensor& w) {
  QT_CHECK(act.q.defined() && act.q.ndim() == 2 && act.cols() == w.cols,
           "ternary_matmul_q8: act " + (act.q.defined() ? shape_str(act.q.shape()) : std::string("undefined")) +
               " for W [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]");
  const int64_t n = act.rows();
  check_q8(act, act.q, n, w.cols, "ternary_matmul_q8");
  QT_CHECK(y.defined() && y.numel() == n * w.rows, "ternary_matmul_q8: y " + (y.defined() ? shape_str(y.shape()) : std::string("undefined")) +
                                                       " for " + std::to_string(n) + " x " + std::to_string(w.rows));
  check_on(y, act.q, "ternary_matmul_q8 y");
  check_on(w.codes, act.q, "ternary_matmul_q8 codes");
  check_on(w.wabs, act.q, "ternary_matmul_q8 wabs");
  QT_DISPATCH_CUDA(act.q, ternary_matmul_q8, y, act, w);
  cpu::check_f32(y, "ternary_matmul_q8 y");
  Tensor levels = Tensor::empty({w.rows, w.cols}, DType::I8);
  unpack_ternary(levels, w);
  const auto* t = static_cast<const int8_t*>(levels.raw());
  const auto* q = static_cast<const int8_t*>(act.q.raw());
  const float* xabs = act.absmax.f32();
  float* py = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < w.rows; ++o) {
    const int8_t* wr = t + o * w.cols;
    const float wdeq = w.wabs.f32()[o] * quant::kInt8Inv127;
    for (int64_t i = 0; i < n; ++i) {
      const int8_t* xr = q + i * w.cols;
      int32_t acc = 0;
      for (int64_t j = 0; j < w.cols; ++j) acc += int32_t(xr[j]) * int32_t(wr[j]);
      py[i * w.rows + o] = float(acc) * (xabs[i] * quant::kInt8Inv127) * wdeq;  // LLM.int8's epilogue, its order
    }
  }
}

void ternary_matmul(Tensor y, Tensor x, const TernaryTensor& w) {
  QT_CHECK(x.defined() && y.defined() && x.numel() % w.cols == 0 && y.numel() == x.numel() / w.cols * w.rows,
           "ternary_matmul: x " + shape_str(x.shape()) + " y " + shape_str(y.shape()) + " W [" + std::to_string(w.rows) +
               ", " + std::to_string(w.cols) + "]");
  check_on(y, x, "ternary_matmul y");
  check_on(w.codes, x, "ternary_matmul codes");
  check_on(w.wabs, x, "ternary_matmul wabs");
  QT_DISPATCH_CUDA(x, ternary_matmul, y, x, w);
  cpu::check_f32(x, "ternary_matmul x");
  cpu::check_f32(y, "ternary_matmul y");
  // BitNet's per-token absmax = LLM.int8's row quantization at threshold 0 (every column quantized)
  const Q8Rows act = Q8Rows::empty(x.numel() / w.cols, w.cols, Device::CPU);
  quantize_act_q8(act, x.view({act.q.size(0), w.cols}), false);
  ternary_matmul_q8(y, act, w);
}

}  // namespace qtrain
