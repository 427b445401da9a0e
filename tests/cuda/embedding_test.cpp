#include "kernels/embedding.h"

#include "tests/cuda/cuda_test_util.h"

namespace qtrain::testing {
namespace {

TEST(CudaEmbedding, ForwardBackwardWithRepeatedIds) {
  QT_SKIP_WITHOUT_GPU();
  const int64_t B = 3, T = 17, V = 50257, C = 64;
  std::mt19937_64 rng(1);
  Tensor ids = Tensor::empty({B * T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) ids.i32()[i] = int32_t(i % 4 == 0 ? 7 : rng() % V);  // token 7 repeats
  Tensor ids_g = ids.to(Device::CUDA);
  Pair wte = randn_pair({V, C}, 2, DType::BF16), wpe = randn_pair({1024, C}, 3, DType::F32);
  for (bool with_pe : {true, false}) {
    Pair out = pair(Tensor::zeros({B * T, C}, DType::F32), DType::BF16);
    embedding_forward(out.cpu, ids, wte.cpu, with_pe ? wpe.cpu : Tensor(), int(T));
    embedding_forward(out.gpu, ids_g, wte.gpu, with_pe ? wpe.gpu : Tensor(), int(T));
    EXPECT_CLOSE(out.gpu, out.cpu, kBf16Tol);
  }
  Pair dout = randn_pair({B * T, C}, 4, DType::BF16);
  Pair dwte = pair(Tensor::zeros({V, C}, DType::F32), DType::F32);
  Pair dwpe = randn_pair({1024, C}, 5, DType::F32);  // accumulated into
  embedding_backward(dwte.cpu, dwpe.cpu, dout.cpu, ids, int(T));
  embedding_backward(dwte.gpu, dwpe.gpu, dout.gpu, ids_g, int(T));
  EXPECT_CLOSE(dwte.gpu, dwte.cpu, 1e-5);
  EXPECT_CLOSE(dwpe.gpu, dwpe.cpu, 1e-5);
}

}  // namespace
}  // namespace qtrain::testing
