// Row-major products through cuBLASLt (column-major): C^T = op(B)^T op(A)^T, so
// the operands are passed swapped. Descriptors and the heuristic's algorithm
// are cached per shape, so a training step costs no planning after step one.
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/gemm_lt.cuh"

namespace qtrain::cuda {
namespace {

struct PlanKey {
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t align_a, align_b, align_c;
  uint8_t trans_a, trans_b, abt, ct, accumulate, bias;
  bool operator==(const PlanKey& o) const { return std::memcmp(this, &o, sizeof(PlanKey)) == 0; }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&k);
    size_t h = 1469598103934665603ull;  // FNV-1a over the (zero-initialised) key bytes
    for (size_t i = 0; i < sizeof(PlanKey); ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
};

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool refused = false;  // a bias epilogue cuBLASLt has no algorithm for: remembered, so it is asked once
};

cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::I8: return CUDA_R_8I;
    case DType::I32: return CUDA_R_32I;
    default: return CUDA_R_32F;
  }
}

// alpha and beta in the scale type: F32, or int32 for the int8 x int8 -> int32 product.
struct Scalars {
  float f[2];
  int32_t i[2];
  bool integer;
  Scalars(float alpha, float beta, bool integer_) : f{alpha, beta}, i{int32_t(alpha), int32_t(beta)}, integer(integer_) {}
  const void* alpha() const { return integer ? static_cast<const void*>(&i[0]) : &f[0]; }
  const void* beta() const { return integer ? static_cast<const void*>(&i[1]) : &f[1]; }
};

uint32_t ptr_alignment(const void* p) {
  uintptr_t u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (u % a) != 0) a >>= 1;
  return a;
}

// Operands of the first call of a shape, used to time the heuristic's
// candidates. Only for beta == 0: the trial runs overwrite c.
struct TuneArgs {
  const void* a;
  const void* b;
  void* c;
};

// The bias epilogue's vector is a per-call attribute of the (cached) descriptor.
void set_bias(const Plan& pl, const void* bias) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
}

// Index of the quickest candidate: the heuristic's first pick is sometimes far
// from best on skinny or odd shapes (the vocab-sized LM-head products).
int fastest(const Plan& pl, const cublasLtMatmulHeuristicResult_t* res, int found, const TuneArgs* t, bool integer) {
  Context& ctx = Context::get();
  cudaStream_t s = ctx.stream();
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  const Scalars sc(1.f, 0.f, integer);
  int best = 0;
  float best_ms = 1e30f;
  for (int i = 0; i < found; ++i) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    auto run = [&] {
      return cublasLtMatmul(ctx.lt(), pl.op, sc.alpha(), t->b, pl.la, t->a, pl.lb, sc.beta(), t->c, pl.lc, t->c, pl.lc,
                            &res[i].algo, ctx.workspace(), ctx.workspace_bytes(), s);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; a failing candidate is skipped
    CUDA_CHECK(cudaEventRecord(e0, s));
    for (int r = 0; r < 3; ++r) run();
    CUDA_CHECK(cudaEventRecord(e1, s));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (ms < best_ms) best_ms = ms, best = i;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return best;
}

Plan make_plan(const PlanKey& k, const TuneArgs* tune, const void* bias) {
  Plan pl;
  cudaDataType_t abt = lt_type(DType(k.abt)), ct = lt_type(DType(k.ct));
  const bool integer = DType(k.abt) == DType::I8;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&pl.op, integer ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F,
                                        integer ? CUDA_R_32I : CUDA_R_32F));
  // Lt's A is our b, Lt's B is our a (see the file comment).
  cublasOperation_t opa = k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opb = k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (k.bias) {  // Lt's D rows are our columns: a bias over Lt's rows is one per output column
    const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
    const int32_t bt = int32_t(ct);
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    set_bias(pl, bias);
  }
  // Stored (pre-op) shapes, column-major: rows = the row-major column count.
  if (k.trans_b)
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.la, abt, k.K, k.N, k.ldb));
  else
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.la, abt, k.N, k.K, k.ldb));
  if (k.trans_a)
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.lb, abt, k.M, k.K, k.lda));
  else
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.lb, abt, k.K, k.M, k.lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.lc, ct, k.N, k.M, k.ldc));

  Context& ctx = Context::get();
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = ctx.workspace_bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  uint32_t al_a = k.align_b, al_b = k.align_a, al_c = k.align_c;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, 4));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, 4));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, 4));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, 4));
  constexpr int kCandidates = 8;
  cublasLtMatmulHeuristicResult_t res[kCandidates] = {};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(ctx.lt(), pl.op, pl.la, pl.lb, pl.lc, pl.lc, pref, kCandidates, res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if ((st != CUBLAS_STATUS_SUCCESS || found == 0) && k.bias) {
    pl.refused = true;  // the caller falls back to the plain product and a bias pass
    return pl;
  }
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw Error("cuBLASLt has no algorithm for gemm M=" + std::to_string(k.M) + " N=" + std::to_string(k.N) +
                    " K=" + std::to_string(k.K) + " (" + dtype_name(DType(k.abt)) + " -> " + dtype_name(DType(k.ct)) +
                    ", status " + std::to_string(int(st)) + ")",
                ErrorKind::Runtime);
  pl.algo = res[0].algo;
  if (found > 1 && tune) pl.algo = res[fastest(pl, res, found, tune, integer)].algo;
  return pl;
}

}  // namespace

bool gemm_rowmajor(void* c, DType ct, int64_t ldc, const void* a, int64_t lda, bool trans_a, const void* b,
                   int64_t ldb, bool trans_b, DType abt, int64_t M, int64_t N, int64_t K, float alpha,
                   float beta, const void* bias) {
  const bool integer = abt == DType::I8;
  QT_CHECK(!bias || (!integer && ptr_alignment(bias) >= 16), "gemm_rowmajor: a bias needs BF16/F32 and 16-byte alignment");
  if (integer) {
    // int8 tensor cores take only the "TN" layout: c = a b^T with both row-major, K contiguous.
    QT_CHECK(ct == DType::I32 && !trans_a && trans_b, "gemm_rowmajor: int8 operands need an I32 c = a b^T");
    QT_CHECK(alpha == 1.f && (beta == 0.f || beta == 1.f), "gemm_rowmajor: int8 takes alpha 1, beta 0 or 1");
  } else {
    QT_CHECK(abt == DType::BF16 || abt == DType::F32, "gemm_rowmajor: operands must be BF16, F32 or I8");
    QT_CHECK(ct == DType::BF16 || ct == DType::F32, "gemm_rowmajor: output must be BF16 or F32");
  }
  if (M == 0 || N == 0) return true;
  Context& ctx = Context::get();
  QT_CHECK(K > 0 || !bias, "gemm_rowmajor: a bias with K = 0");
  if (K == 0) {  // an empty sum: c = beta * c
    QT_CHECK(beta == 0.f || beta == 1.f, "gemm with K=0 supports beta 0 or 1 only");
    if (beta == 0.f) {
      size_t es = ct == DType::BF16 ? 2 : 4;  // F32 and I32 alike
      CUDA_CHECK(cudaMemset2DAsync(c, size_t(ldc) * es, 0, size_t(N) * es, size_t(M), ctx.stream()));
    }
    return true;
  }
  PlanKey key;
  std::memset(&key, 0, sizeof(key));  // padding bytes take part in hash and compare
  key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
  key.align_a = ptr_alignment(a), key.align_b = ptr_alignment(b), key.align_c = ptr_alignment(c);
  key.trans_a = trans_a, key.trans_b = trans_b, key.abt = uint8_t(abt), key.ct = uint8_t(ct);
  key.accumulate = beta != 0.f;
  key.bias = bias != nullptr;

  static std::mutex mu;
  static std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
  // Held through the launch: the bias pointer is an attribute of the shared descriptor.
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(key);
  if (it == plans.end()) {
    TuneArgs t{a, b, c};
    it = plans.emplace(key, make_plan(key, beta == 0.f ? &t : nullptr, bias)).first;
  }
  const Plan* pl = &it->second;  // unordered_map nodes are stable
  if (pl->refused) return false;
  if (bias) set_bias(*pl, bias);
  const Scalars sc(alpha, beta, integer);
  CUBLAS_CHECK(cublasLtMatmul(ctx.lt(), pl->op, sc.alpha(), b, pl->la, a, pl->lb, sc.beta(), c, pl->lc, c, pl->lc,
                              &pl->algo, ctx.workspace(), ctx.workspace_bytes(), ctx.stream()));
  return true;
}

}  // namespace qtrain::cuda
