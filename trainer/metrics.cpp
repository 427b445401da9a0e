#include "trainer/metrics.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/error.h"
#include "trainer/durable_io.h"

namespace qtrain {

namespace fs = std::filesystem;

// Keeps the lines of steps <= last_step; unparseable (torn) lines go too.
static void truncate_after(const std::string& path, int64_t last_step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= last_step)
      kept += line + "\n";
  }
  write_file_synced(path + ".tmp", kept);
  fs::rename(path + ".tmp", path);
}

MetricsWriter::MetricsWriter(const std::string& dir, int64_t resume_step) : path_(dir + "/metrics.jsonl") {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create output directory (" + ec.message() + ")", ErrorKind::Runtime);
  if (resume_step >= 0) truncate_after(path_, resume_step);
  file_ = std::fopen(path_.c_str(), resume_step >= 0 ? "a" : "w");
  if (!file_) throw Error(path_ + ": cannot open for writing (" + std::strerror(errno) + ")", ErrorKind::Runtime);
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

nlohmann::json MetricsWriter::to_json(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},           {"loss", m.loss},
                      {"lr", m.lr},               {"grad_norm", m.grad_norm},
                      {"tokens_per_s", m.tokens_per_s}, {"elapsed_s", m.elapsed_s}};
  if (m.extra.is_object())
    for (auto it = m.extra.begin(); it != m.extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

void MetricsWriter::write(const StepMetrics& m) {
  std::string line = to_json(m).dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error(path_ + ": write failed (" + std::strerror(errno) + ")", ErrorKind::Runtime);
}

}  // namespace qtrain
