#include "models/loftq.h"

#include <lapacke.h>
#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "kernels/matmul.h"
#include "models/method.h"
#include "models/model.h"

namespace qtrain {

namespace {

double frob(const float* p, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  return std::sqrt(s);
}

// d = a - b, elementwise over n floats
void sub(float* d, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
}

}  // namespace

LowRankPair low_rank_split(const Tensor& m_in, int r) {
  QT_CHECK(m_in.device() == Device::CPU && m_in.dtype() == DType::F32 && m_in.shape().size() == 2,
           "low_rank_split wants an F32 host matrix");
  const int64_t m = m_in.size(0), n = m_in.size(1), k = std::min(m, n), kr = std::min<int64_t>(k, r);
  // The row-major [m, n] matrix M is the column-major [n, m] matrix M^T = V S U^T,
  // so sgesdd on it (no transposing copy) returns as its "U" V [n, k] column-major
  // = Vh [k, n] row-major, and as its "VT" U^T [k, m] column-major = U [m, k] row-major.
  Tensor work = m_in.clone();  // sgesdd destroys its input
  std::vector<float> s(static_cast<size_t>(k)), vh(static_cast<size_t>(k * n)), u(static_cast<size_t>(m * k));
  lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', lapack_int(n), lapack_int(m), work.f32(), lapack_int(n),
                                   s.data(), vh.data(), lapack_int(n), u.data(), lapack_int(k));
  if (info != 0)
    throw Error("LoftQ: LAPACK sgesdd failed (info " + std::to_string(info) + ") on a " + std::to_string(m) + "x" +
                    std::to_string(n) + " residual",
                ErrorKind::Runtime);
  LowRankPair p{Tensor::zeros({m, r}, DType::F32), Tensor::zeros({r, n}, DType::F32)};
  float* b = p.b.f32();
  float* a = p.a.f32();
  for (int64_t j = 0; j < kr; ++j) {
    const float sq = std::sqrt(s[size_t(j)]);
    for (int64_t i = 0; i < m; ++i) b[i * r + j] = u[size_t(i * k + j)] * sq;
    for (int64_t i = 0; i < n; ++i) a[j * n + i] = vh[size_t(j * n + i)] * sq;
  }
  return p;
}

LoftqResult loftq(const Tensor& w_in, int r, int iters,
                  const std::function<std::unique_ptr<BaseWeight>(const Tensor&)>& quantize) {
  QT_CHECK(iters >= 1 && r >= 1, "loftq: iters and r must be positive");
  const Tensor w = w_in.to(Device::CPU, DType::F32);
  const int64_t out = w.size(0), in = w.size(1), n = w.numel();
  const double wnorm = std::max(frob(w.f32(), n), 1e-30);
  LoftqResult res;
  Tensor target = w.clone();
  Tensor resid = Tensor::empty({out, in}, DType::F32);
  for (int it = 0; it < iters; ++it) {
    res.base = quantize(target);
    const Tensor deq = res.base->dense_f32();
    sub(resid.f32(), w.f32(), deq.f32(), n);  // W - Q
    if (it == 0) res.plain_rel_err = frob(resid.f32(), n) / wnorm;
    res.init = low_rank_split(resid, r);
    // target = W - L R, the next round's input; W - Q - L R = target - Q.
    target.copy_from(w);
    gemm(target, res.init.b, res.init.a, false, false, -1.f, 1.f);
    sub(resid.f32(), target.f32(), deq.f32(), n);
    res.rel_err.push_back(frob(resid.f32(), n) / wnorm);
  }
  return res;
}

void check_loftq(const Method& m, bool has_adapters, int iters, float lora_scale) {
  if (iters < 0) throw Error("--loftq-iters must be 0 (off) or at least 1 (got " + std::to_string(iters) + ")");
  if (iters == 0) return;
  if (m.trains_base || !m.quantizes_base())
    throw Error("--loftq-iters: --method " + m.name +
                " keeps no quantized base; LoftQ initialises a quantized base and its LoRA adapter (use qlora, "
                "nf4-lora, qlora-fp4, int8-lora ...)");
  if (!has_adapters) throw Error("--loftq-iters: --method " + m.name + " has no adapter to initialise");
  if (std::fabs(lora_scale - 1.f) > 1e-6f)
    spdlog::warn("--loftq-iters: the LoRA scale is {} (not 1): as in peft, lora_B and lora_A hold W - Q's rank-r part "
                 "unscaled, so the model starts from Q + {} B A; --lora-alpha equal to --lora-r gives LoftQ's start",
                 lora_scale, lora_scale);
}

std::unique_ptr<BaseWeight> loftq_make_base(const Method& m, const BaseRequest& req, const Adapter& adapter, int iters,
                                            LowRankPair& init) {
  const int r = adapter.low_rank();
  if (r <= 0)
    throw Error("--loftq-iters: the adapter on " + req.name +
                " does not start from a low-rank pair B A; LoftQ needs --adapter-type lora");
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor w = req.load_f32();
  bool used_float = false;
  LoftqResult res = loftq(w, r, iters, [&](const Tensor& target) {
    const std::function<Tensor()> load = [&]() {
      used_float = true;
      return target;
    };
    auto base = m.make_base({req.src, req.name, req.out, req.in, load, req.opt, req.plan});
    if (!used_float)
      throw Error("--loftq-iters: --method " + m.name + " keeps the stored quantized " + req.name + " of " +
                  req.src.path() + " as it is; LoftQ needs a method that quantizes a float weight on load");
    return base;
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("loftq: {} [{}x{}] r {} x{}: ||W - Q - BA|| / ||W|| {:.5f} (plain quantization {:.5f}), {:.2f} s",
               req.name, req.out, req.in, r, iters, res.rel_err.back(), res.plain_rel_err, secs);
  init = std::move(res.init);
  return std::move(res.base);
}

std::vector<LoftqBuilt> loftq_make_bases(const Method& m, const std::vector<BaseRequest>& reqs,
                                         const std::vector<const Adapter*>& adapters, int iters) {
  QT_CHECK(reqs.size() == adapters.size(), "loftq_make_bases: one adapter per request");
  std::vector<LoftqBuilt> out(reqs.size());
  const size_t chunk = size_t(std::max(1, omp_get_max_threads()));
  for (size_t c0 = 0; c0 < reqs.size(); c0 += chunk) {
    const size_t c1 = std::min(reqs.size(), c0 + chunk);
    std::vector<Tensor> w(c1 - c0);
    for (size_t i = c0; i < c1; ++i) w[i - c0] = reqs[i].load_f32();
    std::vector<std::exception_ptr> err(c1 - c0);
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = c0; i < c1; ++i) {
      try {
        const Tensor& wi = w[i - c0];
        const std::function<Tensor()> load = [&wi] { return wi; };
        const BaseRequest req{reqs[i].src, reqs[i].name, reqs[i].out, reqs[i].in, load, reqs[i].opt, reqs[i].plan};
        out[i].base = loftq_make_base(m, req, *adapters[i], iters, out[i].init);
      } catch (...) {
        err[i - c0] = std::current_exception();
      }
    }
    for (auto& e : err)
      if (e) std::rethrow_exception(e);
  }
  return out;
}

}  // namespace qtrain
