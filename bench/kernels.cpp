// bench_kernels: times qtrain's CUDA kernels at the shapes of the target models
// and sets them beside PyTorch on the same GPU (bench/kernels_torch.py writes
// the anchors). Rows: {config, metric "ms", qtrain, anchor, ratio = anchor/qtrain,
// and the achieved TFLOP/s or GB/s}.
//   bench_kernels [--anchors torch.json] [--out results.json]
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_tensors.h"
#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/device.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"

using namespace qtrain;
using json = nlohmann::json;

namespace {

Tensor gpu_random(const Shape& s, DType dt, float scale, uint64_t seed) {
  return bench::random_tensor(s, scale, seed).to(Device::CUDA, dt);
}

double time_ms(const std::function<void()>& fn, int iters = 20) {
  for (int i = 0; i < 3; ++i) fn();
  cuda_sync();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  cuda_sync();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

// ms per call of fn, `calls` calls captured in one CUDA graph: a decode-size
// kernel runs for a few microseconds, less than launching it from the host.
double graph_time_ms(const std::function<void()>& fn, int calls = 50) {
  fn();  // sizes scratch buffers outside the capture
  CudaGraph g;
  g.begin_capture();
  for (int i = 0; i < calls; ++i) fn();
  std::string why;
  if (!g.end_capture(&why)) {
    std::fprintf(stderr, "graph capture failed: %s\n", why.c_str());
    return 0;
  }
  return time_ms([&] { g.replay(); }, 10) / calls;
}

struct Row {
  std::string config;
  double ms;
  double work;       // FLOPs or bytes per call
  const char* unit;  // "TFLOP/s" or "GB/s"
};

// Decode attention: one new query row per head against a KV cache of ctx
// keys (capacity ctx + 64), at 192 keys (bench_decode's context) and at
// 4096 (the split-over-blocks path). The cache stays in the L2 between the
// graph's calls, so this is the kernel's latency more than DRAM bandwidth.
void decode_attention_rows(std::vector<Row>& rows) {
  const DType bf = DType::BF16;
  struct DecodeShape {
    const char* name;
    int64_t B, Hq, Hkv, D;
    int ctx;
  };
  for (const DecodeShape& s :
       {DecodeShape{"smollm2-135m", 1, 9, 3, 64, 192}, DecodeShape{"smollm2-135m", 8, 9, 3, 64, 192},
        DecodeShape{"llama-7b", 1, 32, 32, 128, 192}, DecodeShape{"llama-7b", 8, 32, 32, 128, 192},
        DecodeShape{"smollm2-135m", 1, 9, 3, 64, 4096}, DecodeShape{"llama-7b", 1, 32, 32, 128, 4096}}) {
    const int64_t cap = s.ctx + 64;
    Tensor q = gpu_random({s.B, 1, s.Hq, s.D}, bf, 1, 20), o = Tensor::empty({s.B, 1, s.Hq, s.D}, bf, Device::CUDA);
    Tensor kc = gpu_random({s.B, cap, s.Hkv, s.D}, bf, 1, 21), vc = gpu_random({s.B, cap, s.Hkv, s.D}, bf, 1, 22);
    rows.push_back({std::string("attention decode ") + s.name + " B=" + std::to_string(s.B) + " ctx=" +
                        std::to_string(s.ctx),
                    graph_time_ms([&] { attention_cached(o, q, kc, vc, s.ctx - 1); }),
                    2.0 * s.B * s.ctx * s.Hkv * s.D * 2, "GB/s"});  // K and V rows read once, BF16
  }
}

// The table and the JSON file of the rows measured.
int finish(const std::vector<Row>& rows, const json& anchors, const std::string& out_path) {
  json out;
  out["device"] = cuda_device_name();
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%MZ", std::gmtime(&now));
  out["date"] = date;
  out["anchor"] = "PyTorch " + anchors.value("_torch", std::string("")) + " (bench/kernels_torch.py), same GPU run";
  out["rows"] = json::array();
  std::printf("%-40s %10s %10s %8s %12s\n", "config", "qtrain ms", "torch ms", "ratio", "achieved");
  for (const Row& r : rows) {
    json row{{"config", r.config}, {"metric", "ms"}, {"qtrain", r.ms}};
    double rate = r.work / (r.ms * 1e-3) / (r.unit[0] == 'T' ? 1e12 : 1e9);
    row[r.unit[0] == 'T' ? "qtrain_tflops" : "qtrain_gbps"] = rate;
    double anchor = anchors.contains(r.config) ? anchors[r.config].get<double>() : 0.0;
    row["anchor"] = anchor > 0 ? json(anchor) : json(nullptr);
    row["ratio"] = anchor > 0 ? json(anchor / r.ms) : json(nullptr);
    out["rows"].push_back(row);
    std::printf("%-40s %10.3f %10.3f %8.2f %8.1f %s\n", r.config.c_str(), r.ms, anchor, anchor > 0 ? anchor / r.ms : 0.0,
                rate, r.unit);
  }
  if (!out_path.empty()) std::ofstream(out_path) << out.dump(1) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string anchors_path, out_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--anchors") anchors_path = argv[i + 1];
    if (a == "--out") out_path = argv[i + 1];
  }
  if (!cuda_available()) {
    std::printf("skipped: no GPU\n");
    return 0;
  }
  json anchors = json::object();
  if (!anchors_path.empty()) {
    std::ifstream f(anchors_path);
    if (f) anchors = json::parse(f, nullptr, false);
  }
  std::vector<Row> rows;
  if (std::getenv("QT_BENCH_DECODE_ATTN_ONLY")) {  // an A/B of the decode attention alone
    decode_attention_rows(rows);
    return finish(rows, anchors, out_path);
  }
  const DType bf = DType::BF16, f32 = DType::F32;
  {
    Tensor a = gpu_random({8192, 1024}, bf, 1, 1), b = gpu_random({1024, 4096}, bf, 1, 2);
    Tensor c = Tensor::empty({8192, 4096}, bf, Device::CUDA);
    rows.push_back({"gemm bf16 8192x4096x1024", time_ms([&] { gemm(c, a, b, false, false); }),
                    2.0 * 8192 * 4096 * 1024, "TFLOP/s"});
  }
  {
    const int64_t N = 8192, C = 1024;
    Tensor x = gpu_random({N, C}, bf, 1, 3), w = gpu_random({C}, f32, 1, 4), b = gpu_random({C}, f32, 1, 5);
    Tensor y = Tensor::empty({N, C}, bf, Device::CUDA), dx = Tensor::empty({N, C}, bf, Device::CUDA);
    Tensor mean = Tensor::empty({N}, f32, Device::CUDA), rstd = Tensor::empty({N}, f32, Device::CUDA);
    Tensor dw = Tensor::zeros({C}, f32, Device::CUDA), db = Tensor::zeros({C}, f32, Device::CUDA);
    rows.push_back({"layernorm fwd+bwd 8192x1024", time_ms([&] {
                      layernorm_forward(y, mean, rstd, x, w, b, 1e-5f);
                      layernorm_backward(dx, dw, db, y, x, w, mean, rstd);
                    }),
                    double(N * C * 2) * 5, "GB/s"});  // fwd: x in, y out; bwd: x, dy in, dx out
  }
  {
    const int64_t N = 16384, C = 576;
    Tensor x = gpu_random({N, C}, bf, 1, 6), w = gpu_random({C}, bf, 1, 7);
    Tensor y = Tensor::empty({N, C}, bf, Device::CUDA), dx = Tensor::empty({N, C}, bf, Device::CUDA);
    Tensor rstd = Tensor::empty({N}, f32, Device::CUDA);
    rows.push_back({"rmsnorm fwd+bwd 16384x576", time_ms([&] {
                      rmsnorm_forward(y, rstd, x, w, 1e-5f);
                      rmsnorm_backward(dx, Tensor(), y, x, w, rstd);
                    }),
                    double(N * C * 2) * 5, "GB/s"});
  }
  {
    const int64_t N = 16384, I = 1536;
    Tensor g = gpu_random({N, I}, bf, 2, 8), u = gpu_random({N, I}, bf, 2, 9);
    Tensor o = Tensor::empty({N, I}, bf, Device::CUDA), dg = Tensor::empty({N, I}, bf, Device::CUDA),
           du = Tensor::empty({N, I}, bf, Device::CUDA);
    rows.push_back({"swiglu fwd+bwd 16384x1536", time_ms([&] {
                      swiglu_forward(o, g, u);
                      swiglu_backward(dg, du, o, g, u);
                    }),
                    double(N * I * 2) * 8, "GB/s"});
  }
  struct AttnShape {
    const char* name;
    int64_t B, T, Hq, Hkv, D;
  };
  for (const AttnShape& s : {AttnShape{"gpt2-medium", 8, 1024, 16, 16, 64}, AttnShape{"smollm2-135m", 16, 1024, 9, 3, 64},
                             AttnShape{"llama-7b", 4, 2048, 32, 32, 128}}) {
    Tensor q = gpu_random({s.B, s.T, s.Hq, s.D}, bf, 1, 10), k = gpu_random({s.B, s.T, s.Hkv, s.D}, bf, 1, 11),
           v = gpu_random({s.B, s.T, s.Hkv, s.D}, bf, 1, 12);
    Tensor o = Tensor::empty(q.shape(), bf, Device::CUDA), lse = Tensor::empty({s.B, s.Hq, s.T}, f32, Device::CUDA);
    Tensor dq = Tensor::empty(q.shape(), bf, Device::CUDA), dk = Tensor::empty(k.shape(), bf, Device::CUDA),
           dv = Tensor::empty(v.shape(), bf, Device::CUDA);
    double fwd_flops = 2.0 * s.B * s.Hq * double(s.T) * s.T * s.D;  // 4·B·H·T²·D, halved by the causal mask
    // The default (cuDNN where it loads: the torch anchor's name), then qtrain's own kernels.
    for (AttentionImpl impl : {AttentionImpl::Auto, AttentionImpl::Own}) {
      set_attention_impl(impl);
      attention_forward(o, lse, q, k, v);
      std::string tag = impl == AttentionImpl::Own ? " [own kernels]" : "";
      rows.push_back({std::string("attention fwd ") + s.name + tag,
                      time_ms([&] { attention_forward(o, lse, q, k, v); }), fwd_flops, "TFLOP/s"});
      rows.push_back({std::string("attention fwd+bwd ") + s.name + tag, time_ms([&] {
                        attention_forward(o, lse, q, k, v);
                        attention_backward(dq, dk, dv, o, q, k, v, o, lse);
                      }),
                      fwd_flops * 3.5, "TFLOP/s"});
      if (impl == AttentionImpl::Auto) std::printf("attention %s: %s\n", s.name, last_attention_impl());
    }
    set_attention_impl(AttentionImpl::Auto);
  }
  decode_attention_rows(rows);
  {
    const int64_t N = 8192, C = 1024, V = 50257;
    Tensor x = gpu_random({N, C}, bf, 1, 13), w = gpu_random({V, C}, bf, 0.02f, 14);
    Tensor dx = Tensor::empty({N, C}, bf, Device::CUDA);
    Tensor tgt = Tensor::empty({N}, DType::I32);
    for (int64_t i = 0; i < N; ++i) tgt.i32()[i] = int32_t((i * 7919) % V);
    Tensor tg = tgt.to(Device::CUDA);
    rows.push_back({"lm_head+CE fwd+bwd 8192x1024 V=50257",
                    time_ms([&] { lm_head_cross_entropy(dx, Tensor(), x, w, tg, 1.f / N); }, 10),
                    2.0 * N * V * C * 2, "TFLOP/s"});
  }
  // The LM head's two vocab-sized products at one chunk's shape, with the odd
  // GPT-2 vocab and with a 64-aligned one: where the fused loss spends its time.
  for (int64_t V : {int64_t(50257), int64_t(50240)}) {
    const int64_t R = 1280, C = 1024;
    Tensor x = gpu_random({R, C}, bf, 1, 17), w = gpu_random({V, C}, bf, 0.02f, 18);
    Tensor logits = Tensor::empty({R, V}, f32, Device::CUDA);
    Tensor dl = gpu_random({R, V}, bf, 1e-4f, 19);
    Tensor dx = Tensor::empty({R, C}, bf, Device::CUDA);
    std::string v = std::to_string(V);
    rows.push_back({"part: logits gemm 1280x" + v + "x1024 F32 out",
                    time_ms([&] { gemm(logits, x, w, false, true); }), 2.0 * R * V * C, "TFLOP/s"});
    rows.push_back({"part: dx gemm 1280x1024x" + v, time_ms([&] { gemm(dx, dl, w, false, false); }),
                    2.0 * R * V * C, "TFLOP/s"});
  }
  {
    const int64_t n = 16 * 1024 * 1024;
    Tensor p = gpu_random({n}, f32, 1, 15), g = gpu_random({n}, f32, 1, 16);
    Tensor m = Tensor::zeros({n}, f32, Device::CUDA), v = Tensor::zeros({n}, f32, Device::CUDA);
    AdamWParams hp;
    hp.weight_decay = 0.1f;
    rows.push_back({"adamw 16M params", time_ms([&] { adamw_step(p, g, m, v, hp); }), double(n) * 4 * 7, "GB/s"});
  }

  return finish(rows, anchors, out_path);
}
