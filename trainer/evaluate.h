// Evaluation: mean next-token loss over one pass of a stream (HF convention:
// the mean over every predicted token of every batch), summed over ranks.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "data/stream.h"
#include "dist/communicator.h"
#include "models/model.h"

namespace qtrain {

struct EvalResult {
  double loss = 0, ppl = 0;
  int64_t tokens = 0;
  bool stopped = false;  // `stop` ended it early on some rank: loss and ppl cover only what was read
  std::map<std::string, double> grad_norms;  // when asked: L2 norm of d(mean loss)/d(param)
};

// Reads `stream` until it ends (or max_batches > 0 batches). With grad_norms,
// the gradients of the mean loss over everything read, taken as one batch,
// are computed for the model's trainable tensors (their grads are clobbered).
// `stop`, asked before each batch, ends it early (a stop signal during a long
// evaluation); every rank then reports stopped.
EvalResult evaluate(Model& model, Stream& stream, Communicator& comm, bool grad_norms, int64_t max_batches = 0,
                    const std::function<bool()>& stop = {});

}  // namespace qtrain
