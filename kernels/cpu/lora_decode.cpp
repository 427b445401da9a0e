// The reference of kernels/lora_decode.h: per adapter t = x A^T in F32, then
// y += s t B^T; and the operand checks both backends share.
#include "kernels/lora_decode.h"

#include <cstdint>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/op_checks.h"

namespace qtrain {

bool lora_decode_supported(const Tensor& x, const std::vector<Tensor>& as, const std::vector<Tensor>& bs) {
  if (!x.is_cuda() || x.dtype() != DType::BF16 || x.ndim() != 2 || x.size(0) > kLoraDecodeMaxRows ||
      x.size(1) % 8 != 0 || as.empty() || as.size() > size_t(kLoraDecodeMaxShared) || as.size() != bs.size() ||
      reinterpret_cast<uintptr_t>(x.raw()) % 16 != 0)  // 16-byte loads of x and A rows
    return false;
  for (size_t i = 0; i < as.size(); ++i)
    if (!as[i].is_cuda() || !bs[i].is_cuda() || as[i].dtype() != DType::BF16 || bs[i].dtype() != DType::BF16 ||
        as[i].size(0) > kLoraDecodeMaxRank || as[i].size(1) != x.size(1) || bs[i].size(1) != as[i].size(0) ||
        reinterpret_cast<uintptr_t>(as[i].raw()) % 16 != 0)
      return false;
  return true;
}

void lora_decode_shared(const std::vector<Tensor>& ys, Tensor x, const std::vector<Tensor>& as,
                        const std::vector<Tensor>& bs, const std::vector<float>& scales) {
  const size_t n = as.size();
  QT_CHECK(n >= 1 && n <= size_t(kLoraDecodeMaxShared) && ys.size() == n && bs.size() == n && scales.size() == n,
           "lora_decode_shared: 1 to " + std::to_string(kLoraDecodeMaxShared) +
               " adapters, each with an output, A, B and a scale");
  QT_CHECK(x.defined() && x.ndim() == 2, "lora_decode_shared: x must be [rows, in]");
  const int64_t m = x.size(0), in = x.size(1);
  for (size_t i = 0; i < n; ++i) {
    QT_CHECK(as[i].defined() && as[i].ndim() == 2 && as[i].size(1) == in,
             "lora_decode_shared: A " + std::to_string(i) + " must be [r, " + std::to_string(in) + "]");
    const int64_t r = as[i].size(0);
    QT_CHECK(bs[i].defined() && bs[i].ndim() == 2 && bs[i].size(1) == r,
             "lora_decode_shared: B " + std::to_string(i) + " must be [out, " + std::to_string(r) + "]");
    check_shaped(ys[i], x, {m, bs[i].size(0)}, "lora_decode_shared y");
    QT_CHECK(as[i].device() == x.device() && bs[i].device() == x.device(),
             "lora_decode_shared: A, B and x must be on one device");
  }
  if (x.is_cuda()) {
    QT_CHECK(lora_decode_supported(x, as, bs),
             "lora_decode_shared: on CUDA x, A and B must be BF16, x at most " + std::to_string(kLoraDecodeMaxRows) +
                 " rows with a width divisible by 8, ranks at most " + std::to_string(kLoraDecodeMaxRank));
  }
  QT_DISPATCH_CUDA(x, lora_decode_shared, ys, x, as, bs, scales);
  for (size_t i = 0; i < n; ++i) {
    Tensor t = Tensor::empty({m, as[i].size(0)}, DType::F32);
    gemm(t, x, as[i], false, true);
    gemm(ys[i], t, bs[i], false, true, scales[i], 1.f);
  }
}

}  // namespace qtrain
