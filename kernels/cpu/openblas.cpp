#include "kernels/cpu/openblas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "kernels/error.h"

#if defined(__x86_64__)
#define QTRAIN_MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define QTRAIN_MULTIARCH "aarch64-linux-gnu"
#else
#define QTRAIN_MULTIARCH "unknown"
#endif

namespace qtrain::cpu {

namespace {

// CBLAS enum values are fixed by the standard (cblas.h).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                         int);
using CoreNameFn = char* (*)();

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  CoreNameFn core_name = nullptr;
};

// The best OpenBLAS kernel family this CPU can run, or nullptr to let OpenBLAS decide.
const char* core_type_for_this_cpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

const OpenBlas& openblas() {
  static OpenBlas lib;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!std::getenv("OPENBLAS_CORETYPE"))
      if (const char* core = core_type_for_this_cpu()) setenv("OPENBLAS_CORETYPE", core, 0);
    // Prefer Debian's OpenMP build, whatever the libopenblas.so.0 alternative points
    // to: it shares our OpenMP threads and runs single-threaded inside our parallel
    // loops, where the pthreads build would start its own threads.
    void* h = nullptr;
    for (const char* name : {"/usr/lib/" QTRAIN_MULTIARCH "/openblas-openmp/libopenblas.so.0", "libopenblas.so.0",
                             "libopenblas.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_GLOBAL))) break;
    if (!h)
      throw Error("OpenBLAS not found (libopenblas.so.0): install it with apt-get install libopenblas0-openmp",
                  ErrorKind::Runtime);
    lib.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    lib.core_name = reinterpret_cast<CoreNameFn>(dlsym(h, "openblas_get_corename"));
    if (!lib.sgemm) throw Error("libopenblas.so.0 has no cblas_sgemm", ErrorKind::Runtime);
  });
  return lib;
}

}  // namespace

void openblas_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* a, int lda,
                    const float* b, int ldb, float beta, float* c, int ldc) {
  openblas().sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, M, N, K, alpha, a, lda, b,
                   ldb, beta, c, ldc);
}

std::string openblas_core_name() {
  const OpenBlas& lib = openblas();
  return lib.core_name ? lib.core_name() : "unknown";
}

}  // namespace qtrain::cpu
