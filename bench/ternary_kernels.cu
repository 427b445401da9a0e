// bench_ternary_kernels: BitNet b1.58's W2A8 products (kernels/ternary.h) at
// LLaMA-7B and SmolLM2 shapes against cuBLASLt BF16 on a ready BF16 weight,
// in the same run (timing: bench/gpu_timing.cuh).
//   decode (M = 1, 4, 8): the dp4a GEMV over the 2-bit weight (activation
//          quantization included) vs the BF16 product; its bytes / time as % of
//          the copy kernel's bandwidth;
//   train (M = 8192): forward = x -> int8, then the fused wgmma kernel (K <=
//          1536) or codes -> int8 + int8 tensor-core GEMM + F32 epilogue (the
//          latter timed at every shape as w2a8_general_fwd_ms); input gradient = codes -> BF16 + BF16 GEMM (STE).
//   q8 (decode and train): the product on x's int8 rows made beforehand
//          (ternary_matmul_q8; in a model quantize_act_q8 makes them once with the
//          SubLN, for every product reading x); that SubLN + quantization is
//          timed beside the plain RMSNorm it replaces (subln_q8_ms, subln_rmsnorm_ms).
//   bench_ternary_kernels [--out results.json] [--shapes TEXT (only names holding TEXT, e.g. smollm2)]
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_tensors.h"
#include "bench/gpu_timing.cuh"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/ternary.h"

using namespace qtrain;
using namespace qtrain::bench;
using json = nlohmann::json;

namespace {
Tensor ones_of(int64_t n) {  // the SubLN's unit weights, cached per width
  static std::map<int64_t, Tensor> cache;
  Tensor& t = cache[n];
  if (!t.defined()) t = Tensor::from_elements(std::vector<float>(size_t(n), 1.f), {n}, DType::F32).to(Device::CUDA);
  return t;
}
}  // namespace

int main(int argc, char** argv) {
  double bw = 0;
  const std::string out_path = bench_start("bench_ternary_kernels", argc, argv, &bw);
  json rows = json::array();
  std::printf("%-28s %9s %9s %7s %9s %7s %9s %7s |", "shape", "bf16 fwd", "w2a8 fwd", "ratio", "q8 fwd", "ratio",
              "w2a8 bwd", "ratio");
  std::printf(" %5s %8s %8s %8s %8s %8s %6s\n", "M", "bf16", "w2a8", "speedup", "q8", "speedup", "%copy");
  const std::string only = bench_arg(argc, argv, "--shapes");
  for (const auto& sh : kLinearShapes) {
    if (!shape_selected(sh, only)) continue;
    Tensor w = bench::random_tensor({sh.out, sh.in}, 0.05f, 1);
    const TernaryTensor th = TernaryTensor::from_packed(quant::quantize_ternary(w.f32(), sh.out, sh.in));
    const std::vector<TernaryTensor> ts = gpu_copies(th);
    const int nt = int(ts.size()), nb = copies_for(size_t(w.numel()) * 2);
    std::vector<Tensor> wb;
    for (int i = 0; i < nb; ++i) wb.push_back(w.to(Device::CUDA, DType::BF16));
    json row{{"shape", sh.name}, {"out", sh.out}, {"in", sh.in}, {"packed_bytes", th.bytes()}};
    {
      const int64_t M = 8192;
      Tensor x = bench::random_tensor({M, sh.in}, 1.f, 2).to(Device::CUDA, DType::BF16);
      Tensor dy = bench::random_tensor({M, sh.out}, 1.f, 3).to(Device::CUDA, DType::BF16);
      Tensor y = Tensor::empty({M, sh.out}, DType::BF16, Device::CUDA), dx = Tensor::empty({M, sh.in}, DType::BF16, Device::CUDA);
      Tensor scratch = Tensor::empty({sh.out, sh.in}, DType::BF16, Device::CUDA);
      const double f16 = graph_ms([&](int i) { gemm(y, x, wb[size_t(i % nb)], false, true); }, 8);
      const double ft = graph_ms([&](int i) { ternary_matmul(y, x, ts[size_t(i % nt)]); }, 8);
      setenv("QT_W2A8_FUSED", "0", 1);  // the general path (int8 levels, cuBLASLt int8, epilogue) beside it
      const double fg = graph_ms([&](int i) { ternary_matmul(y, x, ts[size_t(i % nt)]); }, 8);
      unsetenv("QT_W2A8_FUSED");
      // x quantized beforehand (in a model: once, with the SubLN, for all products reading it)
      const Q8Rows act = Q8Rows::empty(M, sh.in, Device::CUDA);
      quantize_act_q8(act, x, true);
      const double fq = graph_ms([&](int i) { ternary_matmul_q8(y, act, ts[size_t(i % nt)]); }, 8);
      // The fused kernel at each channel block width (the shape picks one); shapes it does not take have none.
      const bool fused = ternary_gemm_fused_shape(sh.out, sh.in);
      json by_nb = fused ? json::object() : json();
      for (const char* nbs : {"1", "2", "3"}) {
        if (!fused) break;
        setenv("QT_W2A8_NB", nbs, 1);
        by_nb[nbs] = graph_ms([&](int i) { ternary_matmul_q8(y, act, ts[size_t(i % nt)]); }, 8);
        unsetenv("QT_W2A8_NB");
      }
      // ... and its pick without the last round's channel halves (QT_W2A8_SPLIT=0)
      double fq_unsplit = 0;
      if (fused) {
        setenv("QT_W2A8_SPLIT", "0", 1);
        fq_unsplit = graph_ms([&](int i) { ternary_matmul_q8(y, act, ts[size_t(i % nt)]); }, 8);
        unsetenv("QT_W2A8_SPLIT");
      }
      const double qs = graph_ms([&](int) { quantize_act_q8(act, x, true); }, 8);
      const double ns = graph_ms([&](int) { rmsnorm_forward(dx, Tensor(), x, ones_of(sh.in), kSubLnEps); }, 8);
      const double b16 = graph_ms([&](int i) { gemm(dx, dy, wb[size_t(i % nb)], false, false); }, 8);
      const double bt = graph_ms([&](int i) {
        unpack_ternary(scratch, ts[size_t(i % nt)]);
        gemm(dx, dy, scratch, false, false);
      }, 8);
      row["train_m8192"] = {{"bf16_fwd_ms", f16}, {"w2a8_fwd_ms", ft}, {"fwd_ratio", ft / f16},
                            {"fused", fused}, {"w2a8_general_fwd_ms", fg}, {"general_fwd_ratio", fg / f16},
                            {"w2a8_q8_fwd_ms", fq}, {"q8_fwd_ratio", fq / f16}, {"w2a8_q8_fwd_ms_by_nb", by_nb},
                            {"w2a8_q8_fwd_ms_unsplit", fused ? json(fq_unsplit) : json()},
                            {"subln_q8_ms", qs}, {"subln_rmsnorm_ms", ns},
                            {"bf16_bwd_ms", b16}, {"ternary_bwd_ms", bt}, {"bwd_ratio", bt / b16}};
      std::printf("%-28s %9.3f %9.3f %6.2fx %9.3f %6.2fx %9.3f %6.2fx | general %.3f |", sh.name, f16, ft, ft / f16, fq,
                  fq / f16, bt, bt / b16, fg);
      if (fused)
        std::printf(" nb1-3 %.3f %.3f %.3f unsplit %.3f |", by_nb["1"].get<double>(), by_nb["2"].get<double>(),
                    by_nb["3"].get<double>(), fq_unsplit);
    }
    json dec = json::array();
    const double read = read_ms(th.bytes());  // the size's own ceiling: a kernel that only reads the codes
    row["read_same_bytes_ms"] = read;
    for (int64_t m : {1, 4, 8}) {
      Tensor xm = bench::random_tensor({m, sh.in}, 1.f, 4).to(Device::CUDA, DType::BF16);
      Tensor ym = Tensor::empty({m, sh.out}, DType::BF16, Device::CUDA);
      const double t16 = graph_ms([&](int i) { gemm(ym, xm, wb[size_t(i % nb)], false, true); }, 64);
      const double tt = graph_ms([&](int i) { ternary_matmul(ym, xm, ts[size_t(i % nt)]); }, 64);
      set_decode_pdl(false);  // the same kernel launched plainly: what the programmatic launch saves in a chain
      const double tn = graph_ms([&](int i) { ternary_matmul(ym, xm, ts[size_t(i % nt)]); }, 64);
      set_decode_pdl(true);
      const Q8Rows am = Q8Rows::empty(m, sh.in, Device::CUDA);
      quantize_act_q8(am, xm, true);
      const double tq = graph_ms([&](int i) { ternary_matmul_q8(ym, am, ts[size_t(i % nt)]); }, 64);
      const double tqs = graph_ms([&](int) { quantize_act_q8(am, xm, true); }, 64);
      Tensor xn = Tensor::empty({m, sh.in}, DType::BF16, Device::CUDA);
      const double tns = graph_ms([&](int) { rmsnorm_forward(xn, Tensor(), xm, ones_of(sh.in), kSubLnEps); }, 64);
      const double bytes = double(th.bytes()) + 2.0 * double(m * (sh.in + sh.out));
      const double pct = 100.0 * bytes / (tt * 1e-3) / 1e9 / bw;
      dec.push_back({{"M", m}, {"bf16_ms", t16}, {"w2a8_ms", tt}, {"speedup_vs_bf16", t16 / tt}, {"pct_copy_bw", pct},
                     {"pct_of_same_size_read", 100.0 * read / tt}, {"w2a8_no_pdl_ms", tn}, {"w2a8_q8_ms", tq},
                     {"q8_speedup_vs_bf16", t16 / tq}, {"q8_pct_of_same_size_read", 100.0 * read / tq},
                     {"subln_q8_ms", tqs}, {"subln_rmsnorm_ms", tns}});
      std::printf(" M%-2lld %8.4f %8.4f %7.2fx %8.4f %7.2fx %5.1f%%", (long long)m, t16, tt, t16 / tt, tq, t16 / tq, pct);
    }
    std::printf("\n");
    row["decode"] = dec;
    rows.push_back(row);
  }
  char date[16];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  json out{{"device", cuda_device_name()}, {"date", date}, {"copy_GBps", bw}, {"rows", rows},
           {"note", "BitNet b1.58 W2A8: 2-bit ternary codes + per-tensor scale, int8 per-token activations. decode = "
                    "dp4a GEMV (activation quantization included); q8 = the same products on int8 rows made beforehand by the fused SubLN + quantization (timed as subln_q8_ms beside the plain RMSNorm, subln_rmsnorm_ms); train fwd = x -> int8, then where fused (K <= 1536, "
                    "sm_90a) one wgmma kernel on the codes, else codes -> int8 + cuBLASLt int8 GEMM + F32 epilogue "
                    "(w2a8_general_fwd_ms: that path at every shape); bwd = codes -> BF16 + BF16 GEMM. Ratios are to cuBLASLt BF16 on a ready BF16 weight."}};
  if (!out_path.empty()) std::ofstream(out_path) << out.dump(1) << "\n";
  return 0;
}
