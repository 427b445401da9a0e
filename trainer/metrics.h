// Per-step metrics as JSON lines in DIR/metrics.jsonl, one line per step,
// flushed as written so `tail -f` and a crash both see every finished step.
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace qtrain {

struct StepMetrics {
  int64_t step = 0;  // 1-based: the number of optimizer steps done
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  nlohmann::json extra = nlohmann::json::object();  // more fields, merged into the line
};

class MetricsWriter {
 public:
  // Creates DIR if needed. A fresh run (resume_step < 0) starts an empty file.
  // A resumed run keeps the lines up to resume_step and drops later ones: the
  // interrupted run wrote them after its last checkpoint and they are redone.
  explicit MetricsWriter(const std::string& dir, int64_t resume_step = -1);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const StepMetrics& m);
  const std::string& path() const { return path_; }

  static nlohmann::json to_json(const StepMetrics& m);

 private:
  std::string path_;
  FILE* file_ = nullptr;
};

}  // namespace qtrain
