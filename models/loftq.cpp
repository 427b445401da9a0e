#include "models/loftq.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <string>

#include "kernels/error.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/svd.h"
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

LowRankPair low_rank_split(const Tensor& m, int r) {
  QT_CHECK(m.dtype() == DType::F32 && m.shape().size() == 2 && r >= 1, "low_rank_split wants an F32 matrix and r >= 1");
  LowRankPair p{Tensor::empty({m.size(0), r}, DType::F32, m.device()), Tensor::empty({r, m.size(1)}, DType::F32, m.device())};
  low_rank_svd(p.b, p.a, m);
  return p;
}

namespace {

// Seconds since t0.
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// loftq_make_bases runs several modules on as many threads; on the GPU one
// round's part (uploads, residual, SVD, the next target) holds this lock while
// the other threads quantize on the CPU, so the GPU holds one module at a time.
std::mutex& gpu_round_mutex() {
  static std::mutex m;
  return m;
}

// The part of a round after quantizing, on the CPU: resid = W - deq, its
// rank-r split, target = W - B A; returns ||target - deq|| (and sets *plain =
// ||W - deq|| when asked).
double round_cpu(const Tensor& w, const Tensor& deq, Tensor& target, Tensor& resid, int r, LowRankPair& init,
                 double* plain) {
  const int64_t n = w.numel();
  sub(resid.f32(), w.f32(), deq.f32(), n);  // W - Q
  if (plain) *plain = frob(resid.f32(), n);
  init = low_rank_split(resid, r);
  // target = W - L R, the next round's input; W - Q - L R = target - Q.
  target.copy_from(w);
  gemm(target, init.b, init.a, false, false, -1.f, 1.f);
  sub(resid.f32(), target.f32(), deq.f32(), n);
  return frob(resid.f32(), n);
}

// The same on the GPU (F32 throughout: the gemm and the SVD's factors are F32,
// as on the CPU). W and deq go up each round and target comes back only when
// another round needs it: nothing of a module stays on the GPU between rounds.
double round_cuda(const Tensor& w, const Tensor& deq, Tensor& target, bool need_target, int r, LowRankPair& init,
                  double* plain) {
  std::lock_guard<std::mutex> lock(gpu_round_mutex());
  Tensor t = w.to(Device::CUDA), q = deq.to(Device::CUDA);
  Tensor resid = t.clone();
  axpy(resid, -1.f, q);  // W - Q
  if (plain) *plain = std::sqrt(sum_squares(resid));
  const LowRankPair lr = low_rank_split(resid, r);
  gemm(t, lr.b, lr.a, false, false, -1.f, 1.f);  // t = W - L R
  resid.copy_from(t);
  axpy(resid, -1.f, q);  // W - Q - L R
  const double err = std::sqrt(sum_squares(resid));
  if (need_target) target.copy_from(t);
  init = {lr.b.to(Device::CPU), lr.a.to(Device::CPU)};
  return err;
}

}  // namespace

LoftqResult loftq(const Tensor& w_in, int r, int iters,
                  const std::function<std::unique_ptr<BaseWeight>(const Tensor&)>& quantize, Device device) {
  QT_CHECK(iters >= 1 && r >= 1, "loftq: iters and r must be positive");
  const Tensor w = w_in.to(Device::CPU, DType::F32);
  const int64_t out = w.size(0), in = w.size(1), n = w.numel();
  const double wnorm = std::max(frob(w.f32(), n), 1e-30);
  LoftqResult res;
  Tensor target = w.clone();
  Tensor resid = device == Device::CPU ? Tensor::empty({out, in}, DType::F32) : Tensor();
  for (int it = 0; it < iters; ++it) {
    auto t0 = std::chrono::steady_clock::now();
    res.base = quantize(target);
    const Tensor deq = res.base->dense_f32();
    res.quantize_seconds += since(t0);
    t0 = std::chrono::steady_clock::now();
    double plain = 0.0;
    double* want_plain = it == 0 ? &plain : nullptr;
    const double err = device == Device::CUDA ? round_cuda(w, deq, target, it + 1 < iters, r, res.init, want_plain)
                                              : round_cpu(w, deq, target, resid, r, res.init, want_plain);
    res.svd_seconds += since(t0);
    if (it == 0) res.plain_rel_err = plain / wnorm;
    res.rel_err.push_back(err / wnorm);
  }
  return res;
}

void check_loftq(const Method& m, bool has_adapters, int iters) {
  if (iters < 0) throw Error("--loftq-iters must be 0 (off) or at least 1 (got " + std::to_string(iters) + ")");
  if (iters == 0) return;
  if (m.trains_base || !m.quantizes_base())
    throw Error("--loftq-iters: --method " + m.name +
                " keeps no quantized base; LoftQ initialises a quantized base and its LoRA adapter (use qlora, "
                "nf4-lora, qlora-fp4, int8-lora ...)");
  if (!has_adapters) throw Error("--loftq-iters: --method " + m.name + " has no adapter to initialise");
}

void warn_loftq_scale(float lora_scale) {
  if (std::fabs(lora_scale - 1.f) > 1e-6f)
    spdlog::warn("--loftq-iters: the LoRA scale is {} (not 1): as in peft, lora_B and lora_A hold W - Q's rank-r part "
                 "unscaled, so the model starts from Q + {} B A; --lora-alpha equal to --lora-r gives LoftQ's start",
                 lora_scale, lora_scale);
}

LoftqBuilt loftq_make_base(const Method& m, const BaseRequest& req, const Adapter& adapter, int iters) {
  const int r = adapter.low_rank();
  if (r <= 0)
    throw Error("--loftq-iters: the adapter on " + req.name +
                " does not start from a low-rank pair B A; LoftQ needs --adapter-type lora");
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor w = req.load_f32();
  bool used_float = false;
  const Device device = req.opt.device;  // the SVD where the model trains (LAPACK on the CPU, cuSOLVER on CUDA)
  LoftqResult res = loftq(
      w, r, iters,
      [&](const Tensor& target) {
        const std::function<Tensor()> load = [&]() {
          used_float = true;
          return target;
        };
        auto base = m.make_base({req.src, req.name, req.out, req.in, load, req.opt, req.plan});
        if (!used_float)
          throw Error("--loftq-iters: --method " + m.name + " keeps the stored quantized " + req.name + " of " +
                      req.src.path() + " as it is; LoftQ needs a method that quantizes a float weight on load");
        return base;
      },
      device);
  spdlog::info("loftq: {} [{}x{}] r {} x{}: ||W - Q - BA|| / ||W|| {:.5f} (plain quantization {:.5f}), {:.2f} s "
               "(quantize {:.2f} s, SVD round on the {} {:.2f} s)",
               req.name, req.out, req.in, r, iters, res.rel_err.back(), res.plain_rel_err, since(t0),
               res.quantize_seconds, device == Device::CUDA ? "GPU" : "CPU", res.svd_seconds);
  return {std::move(res.base), std::move(res.init), res.quantize_seconds, res.svd_seconds};
}

std::vector<LoftqBuilt> loftq_make_bases(const Method& m, const std::vector<BaseRequest>& reqs,
                                         const std::vector<const Adapter*>& adapters, int iters) {
  QT_CHECK(reqs.size() == adapters.size(), "loftq_make_bases: one adapter per request");
  const auto t0 = std::chrono::steady_clock::now();
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
        out[i] = loftq_make_base(m, req, *adapters[i], iters);
      } catch (...) {
        err[i - c0] = std::current_exception();
      }
    }
    for (auto& e : err)
      if (e) std::rethrow_exception(e);
  }
  double quant = 0, svd = 0;
  for (const LoftqBuilt& b : out) quant += b.quantize_seconds, svd += b.svd_seconds;
  if (!reqs.empty())
    spdlog::info("loftq: {} modules x{} in {:.1f} s on {} threads (summed over modules: quantize {:.1f} s, SVD "
                 "rounds on the {} {:.1f} s)",
                 reqs.size(), iters, since(t0), chunk, quant, reqs[0].opt.device == Device::CUDA ? "GPU" : "CPU", svd);
  return out;
}

}  // namespace qtrain
