// Quantized-weight ops (kernels/quant_matmul.h): the containers, and the CPU
// reference of each op, which the CUDA twins must reproduce.
#include "kernels/quant_matmul.h"

#include <cstdlib>

#include "kernels/cpu/reference_math.h"
#include "kernels/dispatch.h"
#include "kernels/op_checks.h"
#include "kernels/activation.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/quant/decode.h"
#include "kernels/quant/dynamic_map.h"

namespace qtrain {
namespace {

template <class T>
Tensor host_1d(const std::vector<T>& v, DType dt) {
  return Tensor::from_elements(v, {int64_t(v.size())}, dt);
}
Tensor moved(const Tensor& t, Device d) { return t.defined() ? t.to(d) : Tensor(); }
size_t nbytes(const Tensor& t) { return t.defined() ? t.nbytes() : 0; }

// The checks every op here runs before the dispatch (both backends need
// them): the weight's tensors on the activations' device, and the shapes.
void check_out(const Tensor& out, int64_t cols, int64_t row0, int64_t rows, const char* what) {
  QT_CHECK(out.defined() && out.ndim() == 2 && out.size(1) == cols,
           std::string(what) + ": out must be [r, " + std::to_string(cols) + "], got " + shape_str(out.shape()));
  QT_CHECK(row0 >= 0 && row0 + out.size(0) <= rows, std::string(what) + ": rows " + std::to_string(row0) + ".." +
                                                        std::to_string(row0 + out.size(0)) + " out of [0, " +
                                                        std::to_string(rows) + ")");
}

void check_weight_on(const Quant4Tensor& w, const Tensor& ref, const char* what) {
  const std::string s(what);
  check_on(w.packed, ref, (s + " packed weight").c_str());
  if (w.double_quant) {
    check_on(w.qabsmax, ref, (s + " quantized absmax").c_str());
    check_on(w.absmax2, ref, (s + " absmax2").c_str());
  } else {
    check_on(w.absmax, ref, (s + " absmax").c_str());
  }
}

void check_weight_on(const Int8Tensor& w, const Tensor& ref, const char* what) {
  check_on(w.q, ref, (std::string(what) + " weight").c_str());
  check_on(w.absmax, ref, (std::string(what) + " absmax").c_str());
}

// x [..., cols] times W [rows, cols]^T into y of x.numel() / cols * rows values.
void check_product(const Tensor& y, const Tensor& x, int64_t rows, int64_t cols, const char* what) {
  check_on(y, x, (std::string(what) + " y").c_str());
  QT_CHECK(x.ndim() >= 1 && x.size(-1) == cols && y.numel() == x.numel() / cols * rows,
           std::string(what) + ": x " + shape_str(x.shape()) + " y " + shape_str(y.shape()) + " W [" +
               std::to_string(rows) + ", " + std::to_string(cols) + "]");
}

}  // namespace

Quant4Tensor Quant4Tensor::from_packed(const quant::Packed4& p, int64_t rows, int64_t cols) {
  QT_CHECK(p.numel == rows * cols, "Quant4Tensor: packed numel != rows * cols");
  Quant4Tensor q;
  q.code = p.code;
  q.rows = rows, q.cols = cols, q.blocksize = p.blocksize;
  q.double_quant = p.double_quant;
  q.offset = p.offset;
  q.packed = host_1d(p.packed, DType::U8);
  if (p.double_quant) {
    q.qabsmax = host_1d(p.qabsmax, DType::U8);
    q.absmax2 = host_1d(p.absmax2, DType::F32);
  } else {
    q.absmax = host_1d(p.absmax, DType::F32);
  }
  return q;
}

Quant4Tensor Quant4Tensor::to(Device d) const {
  Quant4Tensor q = *this;
  q.packed = moved(packed, d), q.absmax = moved(absmax, d), q.qabsmax = moved(qabsmax, d), q.absmax2 = moved(absmax2, d);
  return q;
}

quant::Nf4View Quant4Tensor::view() const {
  quant::Nf4View v = quant::make_nf4_view(code, rows, cols, blocksize, double_quant, offset);
  v.packed = static_cast<const uint8_t*>(packed.raw());
  if (double_quant) {
    v.qabsmax = static_cast<const uint8_t*>(qabsmax.raw());
    v.absmax2 = absmax2.f32();
  } else {
    v.absmax = absmax.f32();
  }
  return v;
}

size_t Quant4Tensor::bytes() const {
  return nbytes(packed) + nbytes(absmax) + nbytes(qabsmax) + nbytes(absmax2) + (double_quant ? 4 : 0);
}

Int8Tensor Int8Tensor::from_rows(const quant::Int8Rows& p) {
  Int8Tensor t;
  t.rows = p.rows, t.cols = p.cols;
  t.q = Tensor::from_elements(p.q, {p.rows, p.cols}, DType::I8);
  t.absmax = host_1d(p.absmax, DType::F32);
  return t;
}

Int8Tensor Int8Tensor::to(Device d) const {
  Int8Tensor t = *this;
  t.q = moved(q, d), t.absmax = moved(absmax, d);
  return t;
}

size_t Int8Tensor::bytes() const { return nbytes(q) + nbytes(absmax); }

void dequantize_rows_4bit(Tensor out, const Quant4Tensor& w, int64_t row0) {
  check_out(out, w.cols, row0, w.rows, "dequantize_rows_4bit");
  check_weight_on(w, out, "dequantize_rows_4bit");
  QT_DISPATCH_CUDA(out, dequantize_rows_4bit, out, w, row0);
  QT_CHECK(out.dtype() == DType::F32, "dequantize_rows_4bit: CPU out must be F32");
  const quant::Nf4View v = w.view();
  const float* map = quant::dynamic_map_signed().data();
  const int64_t e0 = row0 * w.cols, n = out.numel();
  float* o = out.f32();
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t k = 0; k < n; ++k) o[k] = v.at(e0 + k, map);
}

void dequantize_rows_int8(Tensor out, const Int8Tensor& w, int64_t row0) {
  check_out(out, w.cols, row0, w.rows, "dequantize_rows_int8");
  check_weight_on(w, out, "dequantize_rows_int8");
  QT_DISPATCH_CUDA(out, dequantize_rows_int8, out, w, row0);
  QT_CHECK(out.dtype() == DType::F32, "dequantize_rows_int8: CPU out must be F32");
  const int8_t* q = static_cast<const int8_t*>(w.q.raw());
  float* o = out.f32();
  for (int64_t r = 0; r < out.size(0); ++r)
    for (int64_t c = 0; c < w.cols; ++c)
      o[r * w.cols + c] = quant::int8_value(q[(row0 + r) * w.cols + c], w.absmax.f32()[row0 + r]);
}

void int8_matmul(Tensor y, Tensor x, const Int8Tensor& w, float threshold) {
  check_product(y, x, w.rows, w.cols, "int8_matmul");
  check_weight_on(w, x, "int8_matmul");
  QT_DISPATCH_CUDA(x, int8_matmul, y, x, w, threshold);
  cpu::check_f32(x, "int8_matmul x");
  cpu::check_f32(y, "int8_matmul y");
  quant::int8_matmul_decomposed(static_cast<const int8_t*>(w.q.raw()), w.absmax.f32(), w.rows, w.cols, x.f32(),
                                x.numel() / w.cols, y.f32(), threshold);
}

namespace {
Gemv4Kernel g_gemv4_kernel = Gemv4Kernel::TensorCore;
bool env_on(const char* name) {  // unset or anything but 0
  const char* e = std::getenv(name);
  return !(e && *e && std::atoi(e) == 0);
}
bool g_gemv4_norm_inside = env_on("QT_GEMV4_NORM");
bool g_gemv4_swiglu_inside = env_on("QT_GEMV4_SWIGLU");
// Off unless QT_GEMV4_ROPE=1: measured faster (H100, session 28) but its greedy tokens differed from the
// RoPE kernel's in a LLaMA-7B decode; the rotation it shares with rope.cu is now pinned (kernels/cuda/rope.cuh),
// which is not yet confirmed on a GPU (GpuDecodeNormInsideGemv.EqualsTheNormsOwnKernels and
// CudaQuant.Gemv4bitFoldsRopeKv check it bit for bit).
bool g_gemv4_rope_inside = [] {
  const char* e = std::getenv("QT_GEMV4_ROPE");
  return e && *e && std::atoi(e) != 0;
}();
}  // namespace
void set_gemv4_kernel(Gemv4Kernel k) { g_gemv4_kernel = k; }
Gemv4Kernel gemv4_kernel() { return g_gemv4_kernel; }
void set_gemv4_norm_inside(bool on) { g_gemv4_norm_inside = on; }
bool gemv4_norm_inside() { return g_gemv4_norm_inside; }
void set_gemv4_swiglu_inside(bool on) { g_gemv4_swiglu_inside = on; }
bool gemv4_swiglu_inside() { return g_gemv4_swiglu_inside; }
void set_gemv4_rope_inside(bool on) { g_gemv4_rope_inside = on; }
bool gemv4_rope_inside() { return g_gemv4_rope_inside; }

bool gemv_4bit_supported(const Tensor& x, const Quant4Tensor& w) {
  // One 16-byte load = 32 elements of one absmax block, rows starting on such a load.
  return x.is_cuda() && x.dtype() == DType::BF16 && x.numel() / w.cols <= kGemv4MaxRows && w.blocksize == 64 &&
         w.cols % 64 == 0;
}

void matmul_4bit(Tensor y, Tensor x, const Quant4Tensor& w) {
  check_product(y, x, w.rows, w.cols, "matmul_4bit");
  check_weight_on(w, x, "matmul_4bit");
  QT_DISPATCH_CUDA(y, matmul_4bit, y, x, w);
  Tensor dense = Tensor::empty({w.rows, w.cols}, DType::F32);
  dequantize_rows_4bit(dense, w, 0);
  gemm(y, x, dense, false, true);
}

namespace {
void check_shared(const std::vector<Tensor>& ys, const Tensor& x, const std::vector<const Quant4Tensor*>& ws,
                  const std::string& what) {
  QT_CHECK(!ws.empty() && ws.size() == ys.size() && ws.size() <= size_t(kGemv4MaxShared),
           what + ": 1 to " + std::to_string(kGemv4MaxShared) + " weights, one output each (got " +
               std::to_string(ws.size()) + " weights, " + std::to_string(ys.size()) + " outputs)");
  for (size_t i = 0; i < ws.size(); ++i) {
    QT_CHECK(ws[i] && ws[i]->cols == ws[0]->cols, what + ": the weights must share their input width");
    check_product(ys[i], x, ws[i]->rows, ws[i]->cols, what.c_str());
    check_weight_on(*ws[i], x, what.c_str());
  }
}
}  // namespace

void matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor x, const std::vector<const Quant4Tensor*>& ws) {
  check_shared(ys, x, ws, "matmul_4bit_shared");
  QT_DISPATCH_CUDA(x, matmul_4bit_shared, ys, x, ws);
  for (size_t i = 0; i < ws.size(); ++i) matmul_4bit(ys[i], x, *ws[i]);
}

namespace {
// The norm's operands of the add_rmsnorm_matmul_4bit_* ops: x [N, C]; h and r (if defined) like x;
// rstd [N]; w [C].
void check_norm_operands(const Tensor& h, const Tensor& rstd, const Tensor& x, const Tensor& r, const Tensor& w,
                         const std::string& what) {
  QT_CHECK(x.defined() && x.ndim() == 2,
           what + ": x must be [N, C], got " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")));
  check_like(h, x, (what + " h").c_str());
  if (r.defined()) check_like(r, x, (what + " r").c_str());
  check_len(rstd, x, x.size(0), (what + " rstd").c_str());
  check_len(w, x, x.size(1), (what + " w").c_str());
}
}  // namespace

Tensor add_rmsnorm_matmul_4bit_shared(const std::vector<Tensor>& ys, Tensor h, Tensor rstd, Tensor x, Tensor r,
                                      Tensor w, float eps, const std::vector<const Quant4Tensor*>& ws) {
  const char* what = "add_rmsnorm_matmul_4bit_shared";
  check_norm_operands(h, rstd, x, r, w, what);
  check_shared(ys, x, ws, what);
#ifdef QTRAIN_HAS_CUDA
  if (x.is_cuda()) {
    if (Tensor sum = cuda::add_rmsnorm_matmul_4bit_shared(ys, h, rstd, x, r, w, eps, ws); sum.defined()) return sum;
  }
#endif
  if (r.defined())
    add_rmsnorm_forward(h, rstd, x, r, w, eps);
  else
    rmsnorm_forward(h, rstd, x, w, eps);
  matmul_4bit_shared(ys, h, ws);
  return x;
}

Tensor add_rmsnorm_matmul_4bit_swiglu(Tensor s, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w, float eps,
                                      const Quant4Tensor& gate, const Quant4Tensor& up) {
  const char* what = "add_rmsnorm_matmul_4bit_swiglu";
  check_norm_operands(h, rstd, x, r, w, what);
  QT_CHECK(gate.rows == up.rows, std::string(what) + ": gate and up must have the same rows (" +
                                     std::to_string(gate.rows) + " vs " + std::to_string(up.rows) + ")");
  check_shared({s, s}, x, {&gate, &up}, what);
#ifdef QTRAIN_HAS_CUDA
  if (x.is_cuda()) {
    if (Tensor sum = cuda::add_rmsnorm_matmul_4bit_swiglu(s, h, rstd, x, r, w, eps, gate, up); sum.defined()) return sum;
  }
#endif
  // The products in s's dtype, as the model's own activations would hold them, then SwiGLU of them.
  const Tensor g = Tensor::empty(s.shape(), s.dtype(), s.device()), u = Tensor::empty(s.shape(), s.dtype(), s.device());
  const Tensor sum = add_rmsnorm_matmul_4bit_shared({g, u}, h, rstd, x, r, w, eps, {&gate, &up});
  swiglu_forward(s, g, u);
  return sum;
}

Tensor add_rmsnorm_matmul_4bit_rope_kv(Tensor q, Tensor k, Tensor v, Tensor h, Tensor rstd, Tensor x, Tensor r, Tensor w,
                                       float eps, const Quant4Tensor& wq, const Quant4Tensor& wk, const Quant4Tensor& wv,
                                       Tensor kc, Tensor vc, float theta, SeqPos pos) {
  const char* what = "add_rmsnorm_matmul_4bit_rope_kv";
  for (const Tensor* t : {&q, &k, &v})
    QT_CHECK(t->defined() && t->ndim() == 4, std::string(what) + ": q, k and v must be [B, T, H, D], got " +
                                                 (t->defined() ? shape_str(t->shape()) : std::string("undefined")));
  const int64_t N = q.size(0) * q.size(1);
  const Tensor q2 = q.view({N, q.size(2) * q.size(3)}), k2 = k.view({N, k.size(2) * k.size(3)}),
               v2 = v.view({N, v.size(2) * v.size(3)});
  check_norm_operands(h, rstd, x, r, w, what);
  check_shared({q2, k2, v2}, x, {&wq, &wk, &wv}, what);
#ifdef QTRAIN_HAS_CUDA
  if (x.is_cuda()) {
    QT_CHECK(kc.defined() && vc.defined() && kc.ndim() == 4 && kc.shape() == vc.shape() && kc.size(0) == q.size(0) &&
                 kc.size(2) == k.size(2) && kc.size(3) == k.size(3) && pos.extent(int(q.size(1))) <= kc.size(1),
             std::string(what) + ": the cache must be [B, Tc, Hkv, D] with room for the positions");
    if (Tensor sum = cuda::add_rmsnorm_matmul_4bit_rope_kv(q, k, v, h, rstd, x, r, w, eps, wq, wk, wv, kc, vc, theta, pos);
        sum.defined())
      return sum;
  }
#endif
  const Tensor sum = add_rmsnorm_matmul_4bit_shared({q2, k2, v2}, h, rstd, x, r, w, eps, {&wq, &wk, &wv});
  rope_append_kv(q, k, v, kc, vc, theta, pos);
  return sum;
}

}  // namespace qtrain
