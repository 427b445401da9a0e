#include "dist/grad_reducer.h"

#include <algorithm>
#include <chrono>
#include <climits>

namespace qtrain {

namespace {
// Parameters outside the blocks (layer -1) are ordered by position: those
// after the last block (final norm, untied lm head) are final before any
// block's backward; those before the first (embeddings) only at the end.
constexpr int kAfterBlocks = INT_MAX;
constexpr int kBeforeBlocks = -1;
}  // namespace

GradReducer::GradReducer(Communicator& comm, ParamSet& params, size_t bucket_bytes)
    : comm_(comm), params_(params), done_below_(INT_MAX) {
  QT_CHECK(params.allocated(), "GradReducer over an unallocated ParamSet");
  const auto& ps = params.params();
  const int64_t total = params.grads().numel();
  int64_t last_block_param = -1;
  for (size_t i = 0; i < ps.size(); ++i)
    if (ps[i].layer >= 0) last_block_param = int64_t(i);
  auto key = [&](size_t i) -> int {
    if (ps[i].layer >= 0) return ps[i].layer;
    return int64_t(i) > last_block_param ? kAfterBlocks : kBeforeBlocks;
  };
  // Walk backwards; each bucket spans from its lowest parameter's offset to
  // the start of the bucket after it, so the padding between parameters is
  // covered and the buckets tile the whole buffer.
  int64_t end = total;
  bool open = false;
  for (size_t i = ps.size(); i-- > 0;) {
    if (!open) {
      Bucket b;
      b.end = end;
      b.last_param = i;
      b.ready_layer = INT_MAX;
      buckets_.push_back(b);
      open = true;
    }
    Bucket& b = buckets_.back();
    b.first_param = i;
    b.begin = ps[i].offset;
    b.ready_layer = std::min(b.ready_layer, key(i));
    if ((b.end - b.begin) * int64_t(sizeof(float)) >= int64_t(bucket_bytes)) {
      open = false;
      end = b.begin;
    }
  }
}

void GradReducer::start_ready() {
  Tensor grads = params_.grads();
  auto t0 = std::chrono::steady_clock::now();
  while (next_ < buckets_.size() && buckets_[next_].ready_layer >= done_below_) {
    Bucket& b = buckets_[next_++];
    b.started = true;
    comm_.start_allreduce_sum(grads.flat(b.begin, b.end));
  }
  start_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void GradReducer::layer_done(int layer) {
  if (!enabled_ || comm_.world() == 1) return;
  done_below_ = std::min(done_below_, layer);
  start_ready();
}

void GradReducer::finish() {
  if (enabled_ && comm_.world() > 1) {
    done_below_ = INT_MIN;
    start_ready();
    auto t0 = std::chrono::steady_clock::now();
    comm_.wait_allreduces();
    wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (double e = comm_.last_exposed_seconds(); e >= 0) device_exposed_s_ = std::max(device_exposed_s_, 0.0) + e;
  }
  next_ = 0;
  done_below_ = INT_MAX;
  for (auto& b : buckets_) b.started = false;
}

}  // namespace qtrain
