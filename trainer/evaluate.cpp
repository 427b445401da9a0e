#include "trainer/evaluate.h"

#include <cmath>

#include "kernels/elementwise.h"

namespace qtrain {

EvalResult evaluate(Model& model, Stream& stream, Communicator& comm, bool grad_norms, int64_t max_batches,
                    const std::function<bool()>& stop) {
  double sums[3] = {0, 0, 0};  // loss sum, predicted tokens, ranks stopped early
  if (grad_norms) model.params().zero_grads();
  for (int64_t n = 0; max_batches <= 0 || n < max_batches; ++n) {
    if (stop && stop()) {
      sums[2] = 1;
      break;
    }
    Batch b = stream.next();
    if (b.B == 0) break;
    TokenBatch tb{b.B, b.T, b.inputs.data(), b.targets.data()};
    // Gradients of the SUM of losses; divided by the token count at the end,
    // which makes them the gradient of the mean over the whole file.
    LossSum s = model.forward(tb, grad_norms ? 1.f : 0.f);
    if (grad_norms) model.backward();
    sums[0] += s.sum;
    sums[1] += double(s.count);
  }
  comm.allreduce_sum(sums, 3);
  EvalResult r;
  r.tokens = int64_t(sums[1]);
  r.stopped = sums[2] > 0;
  if (r.stopped && r.tokens == 0) return r;
  if (r.tokens == 0) throw Error("evaluation data yielded no predicted tokens (empty split, or sequences of one token)");
  r.loss = sums[0] / sums[1];
  r.ppl = std::exp(r.loss);
  if (grad_norms) {
    comm.allreduce_sum(model.params().grads());
    for (auto& p : model.params().params())
      r.grad_norms[p.name] = std::sqrt(sum_squares(p.grad)) / sums[1];
  }
  return r;
}

}  // namespace qtrain
