// GPU time by kernel, for `qtrain train --profile-kernels`: where a training
// step's time goes, without nsys. CUPTI's activity API records every kernel's
// start and end on the device; libcupti is loaded at run time (dlopen), so
// qtrain neither links nor needs it unless asked. Without CUDA or CUPTI,
// start() says why and the report is empty.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qtrain {

struct KernelTime {
  std::string name;     // demangled where CUPTI gives a mangled name
  std::string klass;    // gemm / attention / lm-head+loss / norm / quant / adamw / nccl / pointwise
  int64_t calls = 0;
  double total_ms = 0;
  // How far this kernel's calls moved the end of the GPU timeline: for each call, its end minus the
  // latest end of the calls that started before it (0 where it ended inside one of them). Summed over
  // all kernels it is the time some kernel was running. Where kernels overlap (programmatic dependent
  // launch: a kernel starts while the one before it runs and waits inside itself), total_ms counts the
  // wait and this does not: it is what each kernel adds to a step.
  double advance_ms = 0;
};

// Starts recording (idempotent). Returns "" or the reason it cannot.
std::string kernel_profile_start();
// Stops, flushes and returns the kernels sorted by total time.
std::vector<KernelTime> kernel_profile_stop();
// The class a kernel name belongs to (shared with tests and reports).
std::string kernel_class(const std::string& name);

}  // namespace qtrain
