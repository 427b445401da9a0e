// Throughput of the CPU reference kernels at the sizes a CPU fine-tune uses
// (gemm 2048^3; SmolLM2-135M attention and LM head at T=512). Prints a table and
// writes bench/results/cpu_kernels.json. Usage: bench_cpu_kernels [--quick]
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "kernels/attention.h"
#include "kernels/cpu/openblas.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"

using namespace qtrain;

namespace {

Tensor random_tensor(const Shape& s, uint64_t seed, float scale = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  Tensor t = Tensor::empty(s, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = nd(rng);
  return t;
}

// Best of `reps` runs after one warm-up, in seconds.
double best_seconds(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int reps = quick ? 1 : 3;
  nlohmann::json results = nlohmann::json::array();
  std::printf("%-34s %12s %12s\n", "kernel", "ms", "GFLOP/s");
  auto report = [&](const std::string& name, double sec, double flops) {
    std::printf("%-34s %12.2f %12.1f\n", name.c_str(), sec * 1e3, flops / sec * 1e-9);
    results.push_back({{"kernel", name}, {"ms", sec * 1e3}, {"gflops", flops / sec * 1e-9}});
  };

  {
    const int64_t n = quick ? 512 : 2048;
    Tensor a = random_tensor({n, n}, 1), b = random_tensor({n, n}, 2), c = Tensor::empty({n, n}, DType::F32);
    const double flops = 2.0 * n * n * n;
    for (auto [ta, tb] : {std::pair{false, false}, std::pair{false, true}, std::pair{true, false}}) {
      const double s = best_seconds(reps, [&] { gemm(c, a, b, ta, tb); });
      report("gemm " + std::to_string(n) + "^3 " + (ta ? "T" : "N") + (tb ? "T" : "N"), s, flops);
    }
  }
  {
    // SmolLM2-135M: 9 query heads, 3 kv heads, head dim 64; one sequence of 512.
    const int64_t B = 1, T = quick ? 128 : 512, Hq = 9, Hkv = 3, D = 64;
    Tensor q = random_tensor({B, T, Hq, D}, 3), k = random_tensor({B, T, Hkv, D}, 4),
           v = random_tensor({B, T, Hkv, D}, 5), dout = random_tensor({B, T, Hq, D}, 6);
    Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({B, Hq, T}, DType::F32);
    Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
           dv = Tensor::empty(v.shape(), DType::F32);
    const double fwd_flops = 4.0 * B * Hq * T * T * D / 2;  // causal half of QK^T and PV
    report("attention fwd T=" + std::to_string(T), best_seconds(reps, [&] { attention_forward(out, lse, q, k, v); }),
           fwd_flops);
    report("attention bwd T=" + std::to_string(T),
           best_seconds(reps, [&] { attention_backward(dq, dk, dv, dout, q, k, v, out, lse); }), 2.5 * fwd_flops);
  }
  {
    // LM head + CE for one 512-token sequence, V=49152, C=576, with dx and dw.
    const int64_t N = quick ? 128 : 512, V = 49152, C = 576;
    Tensor x = random_tensor({N, C}, 7), w = random_tensor({V, C}, 8, 0.02f);
    Tensor targets = Tensor::empty({N}, DType::I32);
    for (int64_t i = 0; i < N; ++i) targets.i32()[i] = int32_t((i * 7919) % V);
    Tensor dx = Tensor::empty({N, C}, DType::F32), dw = Tensor::zeros({V, C}, DType::F32);
    report("lm_head+CE fwd+bwd N=" + std::to_string(N),
           best_seconds(reps, [&] { lm_head_cross_entropy(dx, dw, x, w, targets, 1.f / float(N)); }),
           3 * 2.0 * N * V * C);
  }
  std::printf("threads: %d, OpenBLAS kernels: %s\n", omp_get_max_threads(), cpu::openblas_core_name().c_str());
  std::filesystem::create_directories("bench/results");
  std::ofstream("bench/results/cpu_kernels.json") << nlohmann::json{{"threads", omp_get_max_threads()},
                                                                    {"openblas_core", cpu::openblas_core_name()},
                                                                    {"results", results}}.dump(2) << "\n";
  return 0;
}
