// All-reduce bandwidth of qtrain's Communicator for gradient-bucket sizes,
// as nccl-tests reports it: algbw = bytes / time, busbw = algbw * 2(N-1)/N
// (busbw is comparable across rank counts and with link speeds).
//   mpirun -np 2 build/bench_allreduce_bw --device cuda [--iters 20] [--out bench/results/allreduce_bw.json]
// Without mpirun it runs on one rank (all sizes cost ~nothing: a no-op check).
// The busbw it measures is what bench/scaling_model.py takes as --nvlink-gbs.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dist/bootstrap.h"
#include "kernels/device.h"

using namespace qtrain;

int main(int argc, char** argv) {
  std::string device_arg = "cpu", out;
  int iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--device")) device_arg = argv[i + 1];
    else if (!std::strcmp(argv[i], "--iters")) iters = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--out")) out = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_allreduce_bw [--device cpu|cuda] [--iters N] [--out FILE.json]\n");
      return 2;
    }
  }
  try {
    const Device device = device_arg == "cuda" ? Device::CUDA : Device::CPU;
    auto comm = make_communicator(device, 120);
    const int n = comm->world();
    const bool rank0 = comm->rank() == 0;
    // Sizes around the default 25 MiB bucket, and the adapter sizes of small models.
    const std::vector<size_t> sizes = {size_t(1) << 18, size_t(1) << 20, size_t(4) << 20, size_t(16) << 20,
                                       size_t(25) << 20, size_t(64) << 20, size_t(256) << 20};
    nlohmann::json rows = nlohmann::json::array();
    if (rank0)
      std::printf("%-12s %10s %12s %12s   (%d ranks, %s, %s)\n", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s", n,
                  comm->name().c_str(), device_name(device));
    for (size_t bytes : sizes) {
      Tensor t = Tensor::zeros({int64_t(bytes / sizeof(float))}, DType::F32, device);
      for (int w = 0; w < 3; ++w) comm->allreduce_sum(t);
      comm->barrier();
      auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < iters; ++it) comm->allreduce_sum(t);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      double sum_over_ranks = s;
      comm->allreduce_sum(&sum_over_ranks, 1);  // report the mean over ranks
      s = sum_over_ranks / n;
      double algbw = double(bytes) / s / 1e9, busbw = algbw * 2.0 * (n - 1) / n;
      if (rank0) std::printf("%-12zu %10.1f %12.2f %12.2f\n", bytes, s * 1e6, algbw, busbw);
      rows.push_back({{"bytes", bytes}, {"time_s", s}, {"algbw_GBps", algbw}, {"busbw_GBps", busbw}});
    }
    if (rank0 && !out.empty()) {
      nlohmann::json j = {{"ranks", n}, {"transport", comm->name()}, {"device", device_name(device)},
                          {"gpu", device == Device::CUDA ? cuda_device_name() : ""}, {"iters", iters}, {"sizes", rows}};
      std::ofstream(out) << j.dump(2) << "\n";
      std::printf("wrote %s\n", out.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce_bw: error: %s\n", e.what());
    return 1;
  }
}
