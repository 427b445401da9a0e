// metrics.jsonl lines and the progress formatting.
#include "trainer/metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "trainer/progress.h"

namespace qtrain {

namespace fs = std::filesystem;

static std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Metrics, OneFlushedLinePerStepAndResumeDropsLaterSteps) {
  fs::path dir = fs::temp_directory_path() / ("qtrain_metrics_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  {
    MetricsWriter w(dir.string());
    for (int s = 1; s <= 4; ++s) {
      StepMetrics m{s, 2.5 - 0.1 * s, 1e-4, 0.7, 1000.0 + s, 0.5 * s};
      if (s == 2) m.extra = {{"eval_loss", 2.2}};
      w.write(m);
      // Flushed: readable before the writer closes.
      EXPECT_EQ(read_lines(w.path()).size(), size_t(s));
    }
  }
  auto lines = read_lines((dir / "metrics.jsonl").string());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_DOUBLE_EQ(lines[0]["loss"].get<double>(), 2.4);
  EXPECT_DOUBLE_EQ(lines[0]["tokens_per_s"].get<double>(), 1001.0);
  EXPECT_DOUBLE_EQ(lines[3]["elapsed_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(lines[1]["eval_loss"].get<double>(), 2.2);
  for (const char* k : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"}) EXPECT_TRUE(lines[2].contains(k));
  {
    // Resume from a checkpoint at step 2: steps 3 and 4 are redone.
    MetricsWriter w(dir.string(), 2);
    w.write({3, 9.0, 0, 0, 0, 0});
  }
  lines = read_lines((dir / "metrics.jsonl").string());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2]["step"], 3);
  EXPECT_DOUBLE_EQ(lines[2]["loss"].get<double>(), 9.0);
  {
    MetricsWriter w(dir.string());  // a fresh run starts over
  }
  EXPECT_TRUE(read_lines((dir / "metrics.jsonl").string()).empty());
  fs::remove_all(dir);
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(45.4), "45s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(3599.6), "1h00m");
  EXPECT_EQ(format_duration(2 * 3600 + 3 * 60 + 10), "2h03m");
  EXPECT_EQ(format_duration(86400 * 3 + 3600 * 4), "3d04h");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
}

TEST(Progress, FormatsBarAndLines) {
  EXPECT_EQ(format_bar(0, 100, 10), "|          |");
  EXPECT_EQ(format_bar(50, 100, 10), "|#####     |");
  EXPECT_EQ(format_bar(150, 100, 4), "|####|");
  EXPECT_EQ(format_bar(3, 0, 4), "|    |");
  ProgressInfo p{12, 100, 2.3456, 1234.4, 0.41};
  EXPECT_EQ(format_progress(p, true),
            "step 12/100 |##                  | loss 2.3456 | 1234 tok/s | 0.41 s/step | ETA 36s");
  EXPECT_EQ(format_progress(p, false), "step 12/100 | loss 2.3456 | 1234 tok/s | 0.41 s/step | ETA 36s");
}

}  // namespace qtrain
