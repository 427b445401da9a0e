// Time of LoftQ initialisation (models/loftq.h), on the CPU (LAPACK's sgesdd)
// or the GPU (cuSOLVER, kernels/cuda/svd.cu). Two modes:
//   one weight (default 2048x8192, a LLaMA-1B MLP projection): loftq() with NF4
//     (bitsandbytes layout, double quant: qlora's quantizer); prints the time in
//     quantize and in the rest of the rounds (residual + SVD);
//   --model random:<shape> [--layers L]: a QLoRA model of that shape's first L
//     layers built with --loftq-iters, the real path (all targeted Linears, in
//     parallel; on the GPU the SVDs take turns while other threads quantize),
//     timed against the same model built without LoftQ. Its log has LoftQ's
//     per-module lines and total.
// Writes a JSON summary (--out).
//   bench_loftq_init [--device cpu|cuda] [--shape 4096x11008] [--r 64] [--iters 1]
//   bench_loftq_init --device cuda --model random:llama-7b --layers 32 --r 64 --iters 1 --out loftq_7b.json
#include <omp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/device.h"
#include "models/loftq.h"
#include "models/model.h"
#include "models/quant_weight.h"
#include "models/synthetic_model.h"

using namespace qtrain;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

nlohmann::json one_weight(int64_t out, int64_t in, int r, int iters, Device device) {
  Tensor w = Tensor::empty({out, in}, DType::F32);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = nd(rng);
  const auto t0 = std::chrono::steady_clock::now();
  LoftqResult res = loftq(
      w, r, iters, [](const Tensor& t) { return std::make_unique<Block4Weight>(t, quant::Code4::NF4, true); }, device);
  const double total = since(t0);
  std::printf("LoftQ %lldx%lld r %d, %d round(s) on the %s, %d threads: %.2f s (quantize+dequantize %.2f s, residual + "
              "SVD + next target %.2f s); ||W-Q-BA||/||W|| %.4f vs plain NF4 %.4f\n",
              (long long)out, (long long)in, r, iters, device == Device::CUDA ? "GPU" : "CPU", omp_get_max_threads(),
              total, res.quantize_seconds, res.svd_seconds, res.rel_err.back(), res.plain_rel_err);
  return {{"out", out},
          {"in", in},
          {"seconds", total},
          {"quantize_seconds", res.quantize_seconds},
          {"svd_seconds", res.svd_seconds},
          {"rel_err", res.rel_err},
          {"plain_rel_err", res.plain_rel_err}};
}

nlohmann::json whole_model(const std::string& spec, int layers, int r, int iters, Device device) {
  LoadedModel lm = load_synthetic_model(spec);
  if (layers > 0) lm.config.n_layer = std::min(layers, lm.config.n_layer);
  auto build = [&](int loftq_iters) {
    ModelOptions opt;
    opt.method = "qlora";
    opt.device = device;
    opt.lora.r = r;
    opt.lora.alpha = float(r);  // scale 1: LoftQ's start
    opt.loftq_iters = loftq_iters;
    const auto t0 = std::chrono::steady_clock::now();
    auto m = Model::create(lm.config, *lm.weights, opt);
    if (device == Device::CUDA) cuda_sync();
    return since(t0);
  };
  const double plain = build(0), with = build(iters);
  std::printf("%s, %d layers, QLoRA r %d on the %s, %d threads: built in %.1f s with %d LoftQ round(s), %.1f s "
              "without: LoftQ %.1f s\n",
              spec.c_str(), lm.config.n_layer, r, device == Device::CUDA ? "GPU" : "CPU", omp_get_max_threads(), with,
              iters, plain, with - plain);
  return {{"model", spec},
          {"layers", lm.config.n_layer},
          {"build_seconds_loftq", with},
          {"build_seconds_plain", plain},
          {"loftq_seconds", with - plain}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LoftQ initialisation time (models/loftq.h) on the CPU or the GPU"};
  std::string device_s = "cpu", shape = "2048x8192", model, out_path = "bench/results/loftq_init.json";
  int r = 64, iters = 1, layers = 0;
  app.add_option("--device", device_s, "where the SVD rounds run: cpu (LAPACK) or cuda (cuSOLVER)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--shape", shape, "one weight OUTxIN (without --model)");
  app.add_option("--model", model, "random:<shape> (e.g. random:llama-7b): build a QLoRA model with LoftQ instead");
  app.add_option("--layers", layers, "with --model: only the first L layers (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--r", r, "LoRA rank")->check(CLI::PositiveNumber);
  app.add_option("--iters", iters, "LoftQ rounds")->check(CLI::PositiveNumber);
  app.add_option("--out", out_path, "JSON summary");
  CLI11_PARSE(app, argc, argv);
  const Device device = device_s == "cuda" ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !cuda_available()) {
    std::fprintf(stderr, "bench_loftq_init: --device cuda but no usable GPU%s\n",
                 built_with_cuda() ? "" : " (built without CUDA)");
    return 2;
  }
  try {
    nlohmann::json j;
    if (!model.empty()) {
      j = whole_model(model, layers, r, iters, device);
    } else {
      int64_t o = 0, i = 0;
      if (std::sscanf(shape.c_str(), "%ldx%ld", &o, &i) != 2 || o <= 0 || i <= 0) {
        std::fprintf(stderr, "bench_loftq_init: --shape '%s' is not OUTxIN\n", shape.c_str());
        return 2;
      }
      j = one_weight(o, i, r, iters, device);
    }
    j["device"] = device_s;
    j["r"] = r;
    j["iters"] = iters;
    j["threads"] = omp_get_max_threads();
    if (device == Device::CUDA) j["gpu"] = cuda_device_name();
    const std::filesystem::path p(out_path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << j.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loftq_init: %s\n", e.what());
    return 1;
  }
}
