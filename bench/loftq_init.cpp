// Time of LoftQ initialisation (models/loftq.h) of one weight on the CPU:
// NF4 quantization (bitsandbytes layout, qlora's quantizer) and LAPACK's
// sgesdd per round. Prints a table and writes bench/results/loftq_init.json.
// Usage: bench_loftq_init [OUT IN R ITERS]   (default 2048 8192 64 1: a LLaMA-1B MLP projection)
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "models/loftq.h"
#include "models/quant_weight.h"

using namespace qtrain;

int main(int argc, char** argv) {
  const int64_t out = argc > 1 ? std::atoll(argv[1]) : 2048, in = argc > 2 ? std::atoll(argv[2]) : 8192;
  const int r = argc > 3 ? std::atoi(argv[3]) : 64, iters = argc > 4 ? std::atoi(argv[4]) : 1;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  Tensor w = Tensor::empty({out, in}, DType::F32);
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = nd(rng);
  double quant_s = 0;
  auto t0 = std::chrono::steady_clock::now();
  LoftqResult res = loftq(w, r, iters, [&](const Tensor& t) {
    auto q0 = std::chrono::steady_clock::now();
    auto b = std::make_unique<Block4Weight>(t, quant::Code4::NF4, true);
    b->dense_f32();
    quant_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - q0).count();
    return b;
  });
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("LoftQ %lldx%lld r %d, %d round(s), %d threads: %.2f s (quantize+dequantize %.2f s, SVD and the rest %.2f s); "
              "||W-Q-BA||/||W|| %.4f vs plain NF4 %.4f\n",
              (long long)out, (long long)in, r, iters, omp_get_max_threads(), total, quant_s, total - quant_s,
              res.rel_err.back(), res.plain_rel_err);
  std::filesystem::create_directories("bench/results");
  nlohmann::json j = {{"out", out},      {"in", in},          {"r", r},
                      {"iters", iters},  {"threads", omp_get_max_threads()},
                      {"seconds", total}, {"quantize_seconds", quant_s},
                      {"rel_err", res.rel_err.back()}, {"plain_rel_err", res.plain_rel_err}};
  std::ofstream("bench/results/loftq_init.json") << j.dump(1) << "\n";
}
