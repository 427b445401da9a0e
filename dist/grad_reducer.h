// GradReducer: sums the trainable gradients over ranks in buckets, started
// while backward is still running. Buckets are contiguous ranges of the flat
// gradient buffer (models/params.h), each covering whole parameters, formed
// from the last parameter backwards: the order in which backward finishes
// them. A bucket's all-reduce starts as soon as every layer it touches is
// done, so the communication of late layers hides behind the backward of
// early ones. Only sums: the caller divides by the global token count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "models/params.h"

namespace qtrain {

class GradReducer {
 public:
  struct Bucket {
    int64_t begin = 0, end = 0;     // element range of the flat buffers
    size_t first_param = 0, last_param = 0;  // inclusive indices into ParamSet::params()
    int ready_layer = 0;            // the bucket is complete once layer_done(L) with L <= this
    bool started = false;
  };

  // bucket_bytes: target bucket size (--bucket-mb); a bucket closes once it
  // reaches it, so one big parameter makes a bucket of its own.
  GradReducer(Communicator& comm, ParamSet& params, size_t bucket_bytes);

  // With --grad-accum K, enable only for the last micro-step: the gradient
  // buffer accumulates locally and is reduced once.
  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool enabled() const { return enabled_; }

  // Backward finishes layers from the last to the first: layer_done(L) says
  // the gradients of layer L and of every later layer are final (and so are
  // the parameters after the last layer: final norm, untied head).
  void layer_done(int layer);
  // Starts what is left (embeddings and anything not yet signalled), waits
  // for all of it, and resets for the next step.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Communication that backward did not hide, summed over steps. On NCCL:
  // how far the last all-reduce ran past the end of backward on the GPU
  // (CUDA events). Elsewhere: host time spent inside the starts (all of a
  // synchronous MPI all-reduce) and blocked in finish().
  // wait_seconds() is the host time blocked in finish() only; on a GPU it
  // includes waiting for backward itself, as the host runs ahead.
  double wait_seconds() const { return wait_s_; }
  double exposed_seconds() const { return device_exposed_s_ >= 0 ? device_exposed_s_ : wait_s_ + start_s_; }

 private:
  void start_ready();

  Communicator& comm_;
  ParamSet& params_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;       // first bucket not yet started
  int done_below_;        // lowest layer signalled so far this step
  bool enabled_ = true;
  double device_exposed_s_ = -1.0;  // summed last_exposed_seconds(), when the backend measures it
  double wait_s_ = 0, start_s_ = 0;
};

}  // namespace qtrain
