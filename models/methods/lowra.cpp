// --method lowra: LowRA (Zhou et al. 2025, ../shared/papers/lowra.txt), LoRA on
// a base whose every output channel has its own precision (1, 2 or 4 bits) and
// its own level table, at an average of --lowra-bits over the whole model.
//
// The recipe, in the paper's order:
//   1. plan_bases, once over every quantized Linear: a weighted Lloyd-Max fit
//      per channel at 1, 2 and 4 bits (kernels/quant/lowra.h: 2 iterations
//      from NF4's levels), whose errors feed the two-level precision assigner
//      (models/lowra_assign.h: K-means on the error profile, exact cluster ILP
//      under the one bit budget, exact intra-cluster assignment);
//   2. make_base, per Linear: the weight quantized at its channels' widths with
//      their tables (models/lowra_weight.h);
//   3. LoftQ with 5 rounds (the method's default --loftq-iters), re-quantizing
//      W - B A with the same widths and tables, which LowRA uses because it
//      recovers the most at low bits.
// Everything is deterministic and independent of --seed (K-means is seeded with
// 0), so eval, generate and export rebuild the same base from the same flags.
// Precisions {2, 4} at --lowra-bits >= 2, {1, 2, 4} below, as the paper
// (footnote 4: 1-bit channels hurt LLaMA at 2 bits and above).
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <unordered_map>

#include "kernels/quant/lowra.h"
#include "models/lowra_assign.h"
#include "models/lowra_weight.h"
#include "models/method.h"
#include "models/model.h"

namespace qtrain {
namespace {

constexpr int kLloydIters = 2;  // the paper's (Appendix E)
constexpr int kBitsOf[3] = {1, 2, 4};

struct LowraPlan : BasePlan {
  struct Module {
    std::vector<uint8_t> bits;  // per output channel
    std::vector<float> lut;     // [out * 16]: the assigned width's levels
  };
  std::unordered_map<std::string, Module> modules;
};

std::shared_ptr<const BasePlan> plan_lowra(const std::vector<BaseRequest>& reqs) {
  auto plan = std::make_shared<LowraPlan>();
  if (reqs.empty()) return plan;
  const auto t0 = std::chrono::steady_clock::now();
  const double avg = reqs.front().opt.lowra_bits;
  AssignOptions ao;
  ao.avg_bits = avg;
  ao.precisions = avg >= 2.0 ? std::vector<int>{2, 4} : std::vector<int>{1, 2, 4};
  // the fitted tables of every width, kept until the assignment picks one per channel
  std::vector<std::vector<float>> tables;  // per module: [out * 3 * 16]
  std::vector<ChannelCost> costs;
  for (const BaseRequest& r : reqs) {
    const Tensor w = r.load_f32();
    if (r.in % quant::kLowraGroup)
      throw Error("--method lowra: " + r.name + " [" + std::to_string(r.out) + ", " + std::to_string(r.in) +
                  "] has rows that are not whole 64-weight blocks");
    std::vector<float> t(size_t(r.out) * 3 * quant::kLowraLut, 0.f);
    const size_t first = costs.size();
    costs.resize(first + size_t(r.out));
    const float* wp = w.f32();
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t row = 0; row < r.out; ++row) {
      ChannelCost& c = costs[first + size_t(row)];
      c.params = r.in;
      for (int k = 0; k < 3; ++k) {
        const quant::LowraFit fit = quant::lowra_fit_row(wp + row * r.in, r.in, kBitsOf[k], kLloydIters);
        c.mse[k] = fit.mse;
        std::copy(fit.mapping.begin(), fit.mapping.end(), t.begin() + (row * 3 + k) * quant::kLowraLut);
      }
    }
    tables.push_back(std::move(t));
  }
  const Assignment a = assign_precisions(costs, ao);
  int64_t per_width[3] = {0, 0, 0};
  size_t ch = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    LowraPlan::Module m;
    m.bits.resize(size_t(reqs[i].out));
    m.lut.assign(size_t(reqs[i].out) * quant::kLowraLut, 0.f);
    for (int64_t row = 0; row < reqs[i].out; ++row, ++ch) {
      const int b = a.bits[ch], k = b == 1 ? 0 : b == 2 ? 1 : 2;
      ++per_width[k];
      m.bits[size_t(row)] = uint8_t(b);
      const float* src = tables[i].data() + (row * 3 + k) * quant::kLowraLut;
      std::copy(src, src + (1 << b), m.lut.begin() + row * quant::kLowraLut);
    }
    plan->modules.emplace(reqs[i].name, std::move(m));
  }
  int64_t weights = 0;
  for (const ChannelCost& c : costs) weights += c.params;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("lowra: {} channels in {} modules at {:.4f} bits per weight (budget {:.4f}): {} at 1 bit, {} at 2, {} "
               "at 4; quantization SSE {:.4g}; {:.1f} s",
               costs.size(), reqs.size(), double(a.bits_used) / double(weights), double(a.budget) / double(weights),
               per_width[0], per_width[1], per_width[2], a.sse, secs);
  return plan;
}

std::unique_ptr<BaseWeight> make_lowra(const BaseRequest& r) {
  const auto* plan = dynamic_cast<const LowraPlan*>(r.plan);
  QT_CHECK(plan, "lowra: make_base without the model's plan");
  const auto it = plan->modules.find(r.name);
  QT_CHECK(it != plan->modules.end(), "lowra: no plan for " + r.name);
  return std::make_unique<LowraWeight>(r.load_f32(), it->second.bits, it->second.lut);
}

}  // namespace
}  // namespace qtrain

QT_REGISTER_METHOD(lowra, {.name = "lowra",
                           .help = "LoRA on a LowRA base: 1/2/4 bits per output channel with Lloyd-Max tables at "
                                   "--lowra-bits on average (exact ILP assignment), LoftQ init (5 rounds)",
                           .make_base = qtrain::make_lowra,
                           .plan_bases = qtrain::plan_lowra,
                           .loftq_iters = 5,
                           // the codes at the average budget, plus per-channel tables and offsets
                           .base_bits = [](const qtrain::ModelOptions& o) { return o.lowra_bits + 0.25; }});
