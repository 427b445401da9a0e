// bench_decode: KV-cache decoding speed, ms per new token at batch 1 and 8
// after a prompt (prefill timed apart), per base precision, on random weights
// of a model shape; beside it the memory roofline of one decode step: the
// bytes of every weight read once, over the bandwidth of a copy kernel
// measured in the same run; each step replayed as a CUDA graph (as generate
// runs it) and, beside it, issued eagerly. HF generate anchors run in the same device call
// (bench/decode_hf.py) and are joined by bench/device_run.sh. Every Linear
// carries an unmerged LoRA of rank --lora-r (16); --lora-r 0 runs the base
// alone, as the HF anchors do.
//
//   bench_decode --model random:llama-7b --methods lora,qlora --batch 1,8 --prompt 128 --new 64 [--lora-r 16] --out FILE.json
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "kernels/kernel_profile.h"
#include "models/model.h"

namespace {

using namespace qtrain;
using Clock = std::chrono::steady_clock;

double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, ',');) out.push_back(p);
  return out;
}

__global__ void copy_kernel(const int4* __restrict__ src, int4* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// Bytes/s of a device copy kernel over 1 GiB (read + write counted), the roofline's ceiling.
double copy_bandwidth() {
  const size_t bytes = size_t(1) << 30, n = bytes / 16;
  void *a = nullptr, *b = nullptr;
  cudaMalloc(&a, bytes);
  cudaMalloc(&b, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  copy_kernel<<<1056, 512>>>(static_cast<int4*>(a), static_cast<int4*>(b), n);
  cudaEventRecord(e0);
  for (int i = 0; i < 10; ++i) copy_kernel<<<1056, 512>>>(static_cast<int4*>(a), static_cast<int4*>(b), n);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) * 10 / (double(ms) * 1e-3);
}

int argmax(const float* p, int64_t n) { return int(std::max_element(p, p + n) - p); }

}  // namespace

int main(int argc, char** argv) {
  std::string model = "random:smollm2-135m", methods = "lora,qlora,int8-lora", batches = "1,8", out;
  int prompt = 128, gen = 64, lora_r = 16;
  bool profile = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--methods") methods = v;
    else if (k == "--batch") batches = v;
    else if (k == "--prompt") prompt = std::stoi(v);
    else if (k == "--new") gen = std::stoi(v);
    else if (k == "--out") out = v;
    else if (k == "--lora-r") lora_r = std::stoi(v);
    else if (k == "--profile") profile = v == "1";
    else { std::fprintf(stderr, "unknown flag %s\n", k.c_str()); return 2; }
  }
  if (!cuda_available()) { std::fprintf(stderr, "bench_decode: no GPU\n"); return 1; }
  const double bw = copy_bandwidth();
  nlohmann::json rows = nlohmann::json::array();
  std::printf("%-22s %-10s %5s %12s %12s %12s %12s %9s\n", "model", "method", "batch", "prefill ms", "ms/token",
              "eager ms/tok", "roofline ms", "of roof");
  for (const std::string& method : split(methods)) {
    LoadedModel lm = load_model(model);
    ModelOptions mo;
    mo.device = Device::CUDA;
    mo.method = method;
    mo.lora.r = std::max(lora_r, 1);
    mo.lora.alpha = 2.f * float(mo.lora.r);
    if (lora_r == 0) mo.targets = {};  // the base alone
    auto m = Model::create(lm.config, *lm.weights, mo);
    // The bytes one decode step reads: every Linear's base (and adapter) as stored, the other
    // tensors (embedding row, norms, lm_head) in BF16.
    double weight_bytes = 0, linear_params = 0;
    for (Linear* lin : m->linears()) {
      weight_bytes += double(lin->base().bytes());
      linear_params += double(lin->in()) * double(lin->out());
    }
    weight_bytes += 2.0 * (double(m->total_params()) - linear_params) + 4.0 * double(m->trainable_params());
    const double roof_ms = weight_bytes / bw * 1e3;
    for (const std::string& bs : split(batches)) {
      const int B = std::stoi(bs);
      std::vector<int32_t> ids(size_t(B) * prompt);
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7919) % size_t(lm.config.vocab_size));
      // ms per new token with the step captured as a CUDA graph (what generate runs) and issued eagerly.
      double prefill = 0, per_token[2] = {0, 0};
      std::string status;
      // FNV-1a of the greedy tokens of each mode's last round: a changed kernel that should give the same
      // bits (QT_GEMV4_NORM=0 against the default, say) must give the same hash, graphs or not.
      uint64_t tokens_hash[2] = {0, 0};
      for (int graphs = 1; graphs >= 0; --graphs) {
        m->set_decode_graphs(graphs == 1);
        for (int rep = 0; rep < 2; ++rep) {  // the first round warms the allocator, cuBLASLt and the graph
          KvCache c = m->new_kv_cache(B, prompt + gen);
          cuda_sync();
          auto t0 = Clock::now();
          Tensor logits = m->decode(ids.data(), B, prompt, c);
          if (graphs) prefill = secs(t0) * 1e3;
          std::vector<int32_t> next(static_cast<size_t>(B));
          t0 = Clock::now();
          uint64_t h = 1469598103934665603ull;
          for (int s = 0; s < gen; ++s) {
            for (int b = 0; b < B; ++b) {
              next[size_t(b)] = argmax(logits.f32() + int64_t(b) * lm.config.vocab_size, lm.config.vocab_size);
              h = (h ^ uint64_t(uint32_t(next[size_t(b)]))) * 1099511628211ull;
            }
            logits = m->decode(next.data(), B, 1, c);
          }
          per_token[graphs] = secs(t0) * 1e3 / gen;
          tokens_hash[graphs] = h;
          if (graphs) status = m->decode_graph_status();
        }
      }
      if (profile) {  // where a replayed step's GPU time goes: kernels per step and their time (CUPTI)
        m->set_decode_graphs(true);
        KvCache c = m->new_kv_cache(B, prompt + gen);
        Tensor logits = m->decode(ids.data(), B, prompt, c);
        std::vector<int32_t> next(static_cast<size_t>(B), 1);
        for (int s = 0; s < 4; ++s) logits = m->decode(next.data(), B, 1, c);
        const std::string why = kernel_profile_start();
        const int n = 16;
        auto t0 = Clock::now();
        for (int s = 0; s < n; ++s) logits = m->decode(next.data(), B, 1, c);
        const double wall = secs(t0) * 1e3 / n;
        std::vector<KernelTime> ks = kernel_profile_stop();
        double busy = 0, calls = 0, advance = 0;
        for (const KernelTime& k : ks) busy += k.total_ms / n, calls += double(k.calls) / n, advance += k.advance_ms / n;
        std::printf("  profile %s B=%d: %s%.0f kernels/step, %.3f ms GPU busy (%.3f ms with some kernel running) of %.3f ms per step\n",
                    method.c_str(), B, why.empty() ? "" : (why + " ").c_str(), calls, busy, advance, wall);
        // With programmatic dependent launch a kernel starts while the one before it runs and waits
        // inside itself, and CUPTI counts that wait in its time (busy can exceed the step). "adds" is
        // what a call moves the end of the timeline (KernelTime::advance_ms): its share of the step.
        if (decode_pdl()) {
          std::printf("    (PDL on: each time includes the wait for the kernel before it; QT_DECODE_PDL=0 for their own times)\n");
          std::sort(ks.begin(), ks.end(), [](const KernelTime& a, const KernelTime& b) { return a.advance_ms > b.advance_ms; });
        }
        for (size_t i = 0; i < ks.size() && i < 14; ++i)
          std::printf("    %7.1f/step %8.2f us  adds %7.2f us  %-10s %.90s\n", double(ks[i].calls) / n,
                      1e3 * ks[i].total_ms / double(ks[i].calls), 1e3 * ks[i].advance_ms / double(ks[i].calls),
                      ks[i].klass.c_str(), ks[i].name.c_str());
      }
      char hash_hex[20];
      std::snprintf(hash_hex, sizeof hash_hex, "%016llx", static_cast<unsigned long long>(tokens_hash[1]));
      std::printf("%-22s %-10s %5d %12.2f %12.3f %12.3f %12.3f %8.0f%%  %s tokens %s%s\n", model.c_str(), method.c_str(), B, prefill,
                  per_token[1], per_token[0], roof_ms, 100.0 * roof_ms / per_token[1], status.c_str(), hash_hex,
                  tokens_hash[0] == tokens_hash[1] ? "" : " (eager differs)");
      rows.push_back({{"model", model}, {"method", method}, {"lora_r", lora_r}, {"batch", B}, {"prompt", prompt}, {"new_tokens", gen},
                      {"prefill_ms", prefill}, {"ms_per_token", per_token[1]}, {"ms_per_token_eager", per_token[0]},
                      {"graph_status", status}, {"weight_bytes", weight_bytes}, {"roofline_ms", roof_ms},
                      {"fraction_of_roofline", roof_ms / per_token[1]}, {"tokens_fnv1a", hash_hex},
                      {"tokens_eager_equal", tokens_hash[0] == tokens_hash[1]}});
    }
  }
  nlohmann::json j = {{"device", cuda_device_name()}, {"copy_bandwidth_GBps", bw / 1e9}, {"rows", rows}};
  if (!out.empty()) std::ofstream(out) << j.dump(1) << "\n";
  return 0;
}
