// LoftQ initialisation (Li et al. 2023, "LoftQ: LoRA-Fine-Tuning-Aware
// Quantization"), as peft's loftq_init does it, for any method whose base is
// quantized from a float weight on load:
//   T = W;  repeat N times:  Q = deq(quantize(T));  L R = rank-r SVD of W - Q;  T = W - L R
// The Linear keeps quantize(T) of the last round as its base; the adapter starts
// from lora_B = L = U sqrt(S), lora_A = R = sqrt(S) Vh, so that Q + B A ~ W.
// As in peft the LoRA scale is not folded in: the starting weight is
// Q + s B A, which is the LoftQ point only for s = 1 (alpha = r; a warning says so).
// Where: the quantizer runs on the host (it is the method's own make_base); the
// SVD, which dominates (a 1024 x 2752 round: quantize 0.04 s, SVD 0.9 s on one
// core; it grows with the cube of the size), runs where the model trains: LAPACK
// on the CPU, cuSOLVER on CUDA (kernels/svd.h).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "kernels/tensor.h"
#include "models/base_weight.h"

namespace qtrain {

class Adapter;
struct BaseRequest;
struct Method;

// --help of eval, export and generate: an adapter trained with --loftq-iters
// fits the LoftQ base, which those commands rebuild only when told.
inline constexpr const char* kLoftqRebuildHelp =
    "the --loftq-iters the adapter was trained with: rebuilds the same LoftQ base (the adapter's A and B then replace "
    "LoftQ's start); an adapter trained with LoftQ on a plain quantized base is off by the LoftQ correction";

struct LowRankPair {
  Tensor b;  // [out, r] = U[:, :r] sqrt(S[:r])
  Tensor a;  // [r, in]  = sqrt(S[:r]) Vh[:r, :]
};

// The rank-r truncated SVD of m [out, in] (F32), split as peft's
// _low_rank_decomposition does: low_rank_svd (kernels/svd.h), LAPACK's sgesdd
// on the CPU, cuSOLVER on the GPU; the factors are on m's device. Columns past
// min(out, in) are zero.
LowRankPair low_rank_split(const Tensor& m, int r);

struct LoftqResult {
  std::unique_ptr<BaseWeight> base;
  LowRankPair init;
  // ||W - Q_k - B_k A_k||_F / ||W||_F after round k (k = 1..iters), and
  // ||W - quantize(W)|| / ||W|| (plain quantization) for comparison.
  std::vector<double> rel_err;
  double plain_rel_err = 0.0;
  // Time in quantize (and dequantizing its result), and in the rest of the
  // rounds (residual, SVD, next target; on the GPU with the uploads).
  double quantize_seconds = 0.0, svd_seconds = 0.0;
};

// quantize(T) builds the base from a float [out, in] target; its dense_f32()
// is the dequantized weight. iters >= 1. w is a host tensor and quantize runs
// on the host; with device CUDA the rest of each round (W - Q, its SVD,
// W - B A and the errors) runs on the GPU, one call at a time across threads
// (the results, init included, come back to the host). The CPU path is the
// reference: LAPACK, and the default on the CPU device.
LoftqResult loftq(const Tensor& w, int r, int iters,
                  const std::function<std::unique_ptr<BaseWeight>(const Tensor&)>& quantize,
                  Device device = Device::CPU);

struct LoftqBuilt {
  std::unique_ptr<BaseWeight> base;
  LowRankPair init;
  double quantize_seconds = 0.0, svd_seconds = 0.0;  // LoftqResult's
};

// One targeted Linear under --loftq-iters: runs loftq() with the method's
// make_base as the quantizer, on the model's device (req.opt.device), logs the
// module's errors and times, and returns the base and the adapter's start
// (rank `adapter`'s low_rank()).
LoftqBuilt loftq_make_base(const Method& m, const BaseRequest& req, const Adapter& adapter, int iters);

// What Model::finish_build calls: loftq_make_base for every request (reqs[i]
// with adapters[i]), several at once. The rounds (one SVD each) dominate
// building a quantized model and one SVD of a Linear-sized matrix does not keep
// many cores busy, so the modules run in parallel in chunks of the OpenMP
// thread count; each chunk's weights are loaded one after another first (the
// source is read by one thread) and only a chunk's float weights are held.
// On the GPU the SVDs take turns while the other threads quantize. Logs the
// total time.
std::vector<LoftqBuilt> loftq_make_bases(const Method& m, const std::vector<BaseRequest>& reqs,
                                         const std::vector<const Adapter*>& adapters, int iters);
// Refuses --loftq-iters on a method without a quantized base or without adapters
// (an Error naming the method); iters < 0 is an error, 0 is off.
void check_loftq(const Method& m, bool has_adapters, int iters);
// Warns when the LoRA scale is not 1 (the start is then Q + s B A, not LoftQ's
// Q + B A). Called where the bases are built, so once per run (a Model is also
// declared without weights, for the memory plan).
void warn_loftq_scale(float lora_scale);

}  // namespace qtrain
