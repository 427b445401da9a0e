#include "trainer/kernel_report.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace qtrain {

void write_kernel_profile(const std::vector<KernelTime>& kernels, int64_t steps, const std::string& json_path) {
  if (kernels.empty() || steps <= 0) {
    spdlog::warn("--profile-kernels: no kernels recorded");
    return;
  }
  double total = 0;
  std::map<std::string, double> by_class;
  for (const auto& k : kernels) {
    total += k.total_ms;
    by_class[k.klass] += k.total_ms;
  }
  std::vector<std::pair<std::string, double>> classes(by_class.begin(), by_class.end());
  std::sort(classes.begin(), classes.end(), [](auto& a, auto& b) { return a.second > b.second; });
  const double per = 1.0 / double(steps);
  spdlog::info("GPU kernel time over {} steps: {:.2f} ms per step", steps, total * per);
  nlohmann::json j = {{"steps", steps}, {"gpu_ms_per_step", total * per}};
  for (auto& [c, ms] : classes) {
    spdlog::info("  {:<14} {:8.2f} ms/step {:5.1f}%", c, ms * per, 100 * ms / total);
    j["classes"][c] = {{"ms_per_step", ms * per}, {"share", ms / total}};
  }
  for (size_t i = 0; i < kernels.size(); ++i) {
    const auto& k = kernels[i];
    if (i < 12)
      spdlog::info("  {:8.2f} ms/step {:5.1f}% {:>6} calls/step  {}", k.total_ms * per, 100 * k.total_ms / total,
                   double(k.calls) * per, k.name.substr(0, 90));
    j["kernels"].push_back({{"name", k.name}, {"class", k.klass}, {"ms_per_step", k.total_ms * per},
                            {"calls_per_step", double(k.calls) * per}});
  }
  std::ofstream(json_path) << j.dump(1) << "\n";
  spdlog::info("wrote {}", json_path);
}

}  // namespace qtrain
