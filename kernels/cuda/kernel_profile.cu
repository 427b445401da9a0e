// CUPTI activity tracing behind kernels/kernel_profile.h. libcupti is
// dlopen'ed (CUDA toolkit or the nvidia-cuda-cupti pip wheel), so a build
// without it, or a machine without it, still runs; only the report is empty.
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/kernel_profile.h"

#if __has_include(<cupti_activity.h>)
#include <cupti_activity.h>
#define QT_HAVE_CUPTI 1
#endif

namespace qtrain {

#ifdef QT_HAVE_CUPTI
namespace {

struct Cupti {
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
};

std::mutex g_mu;
std::map<std::string, KernelTime> g_kernels;  // by mangled name
struct Call {
  uint64_t start, end;
  KernelTime* kernel;  // g_kernels' nodes stay put
};
std::vector<Call> g_calls;  // every call, for the timeline advance (KernelTime::advance_ms)
Cupti g_api;
bool g_on = false;
constexpr size_t kBufBytes = 8 << 20;

std::string demangle(const char* s) {
  int st = 0;
  char* d = abi::__cxa_demangle(s, nullptr, nullptr, &st);
  std::string r = st == 0 && d ? d : s;
  std::free(d);
  // namespaces, template arguments and parameter lists make the table unreadable
  for (const char* junk : {"(anonymous namespace)::", "qtrain::cuda::", "void "})
    for (size_t p; (p = r.find(junk)) != std::string::npos;) r.erase(p, std::strlen(junk));
  if (auto p = r.find('('); p != std::string::npos) r.resize(p);
  return r;
}

void CUPTIAPI buffer_requested(uint8_t** buf, size_t* size, size_t* max_records) {
  *buf = static_cast<uint8_t*>(std::aligned_alloc(8, kBufBytes));
  *size = kBufBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buf, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(g_mu);
  while (g_api.next_record(buf, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    // start, end and name sit at the same place in every CUpti_ActivityKernelN
    auto* k = reinterpret_cast<CUpti_ActivityKernel10*>(rec);
    KernelTime& t = g_kernels[k->name ? k->name : "?"];
    ++t.calls;
    t.total_ms += double(k->end - k->start) * 1e-6;
    g_calls.push_back({k->start, k->end, &t});
  }
  std::free(buf);
}

std::string load_cupti() {
  if (g_api.enable) return "";
  const char* names[] = {"libcupti.so", "libcupti.so.13", "libcupti.so.12"};
  void* h = nullptr;
  for (const char* n : names)
    if ((h = dlopen(n, RTLD_NOW | RTLD_GLOBAL))) break;
  if (!h) return "libcupti not found (add the CUDA toolkit's extras/CUPTI/lib64 or the nvidia-cuda-cupti wheel to LD_LIBRARY_PATH)";
  Cupti a;
  a.enable = reinterpret_cast<decltype(a.enable)>(dlsym(h, "cuptiActivityEnable"));
  a.disable = reinterpret_cast<decltype(a.disable)>(dlsym(h, "cuptiActivityDisable"));
  a.register_callbacks = reinterpret_cast<decltype(a.register_callbacks)>(dlsym(h, "cuptiActivityRegisterCallbacks"));
  a.flush_all = reinterpret_cast<decltype(a.flush_all)>(dlsym(h, "cuptiActivityFlushAll"));
  a.next_record = reinterpret_cast<decltype(a.next_record)>(dlsym(h, "cuptiActivityGetNextRecord"));
  if (!a.enable || !a.disable || !a.register_callbacks || !a.flush_all || !a.next_record)
    return "libcupti lacks the activity API";
  g_api = a;
  return "";
}

}  // namespace

std::string kernel_profile_start() {
  if (g_on) return "";
  if (std::string e = load_cupti(); !e.empty()) return e;
  if (g_api.register_callbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      g_api.enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS)
    return "CUPTI refused kernel tracing (another profiler attached?)";
  g_on = true;
  return "";
}

std::vector<KernelTime> kernel_profile_stop() {
  if (!g_on) return {};
  g_api.flush_all(1);
  g_api.disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  g_on = false;
  std::vector<KernelTime> out;
  std::lock_guard<std::mutex> lock(g_mu);
  std::sort(g_calls.begin(), g_calls.end(), [](const Call& a, const Call& b) { return a.start < b.start; });
  uint64_t frontier = 0;  // the latest end so far
  for (const Call& c : g_calls) {
    if (c.end > frontier) c.kernel->advance_ms += double(c.end - std::max(frontier, c.start)) * 1e-6;
    frontier = std::max(frontier, c.end);
  }
  g_calls.clear();
  for (auto& [mangled, t] : g_kernels) {
    KernelTime k = t;
    k.name = demangle(mangled.c_str());
    k.klass = kernel_class(mangled + " " + k.name);
    out.push_back(k);
  }
  g_kernels.clear();
  std::sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.total_ms > b.total_ms; });
  return out;
}

#else
std::string kernel_profile_start() { return "this build has no CUPTI headers"; }
std::vector<KernelTime> kernel_profile_stop() { return {}; }
#endif

}  // namespace qtrain
