// The one-token decode step as a CUDA graph. Eagerly, a step of a 30-layer
// model is ~40 launches per layer issued by the host, and at batch 1 the GPU
// finishes each before the host issues the next: decoding ran at 3-10 ms per
// token against a weight-read roofline of ~0.1-1 ms. Captured once, a step is
// one graph launch. The kernels read the step's position from a device int
// (SeqPos::dev) and its token ids from a fixed buffer, so the same graph
// replays at every later position of the cache.
//
// Life cycle per cache: the first one-token step runs eagerly with the device
// position (it sizes every scratch buffer and table and uploads lazily-made
// device weights), the second captures and replays, later ones replay. A
// graph is recaptured when a buffer it baked in moved (cuda_buffer_generation),
// and given up, with the reason in decode_graph_status(), when capture fails.
#include <functional>
#include <string>

#include "kernels/device.h"
#include "models/model.h"

namespace qtrain {

struct DecodeGraph {
  CudaGraph graph;
  Tensor ids, pos, logits;     // device I32 [B], I32 [1], F32 [B, V]: fixed addresses for every replay
  const void* cache_key = nullptr;  // the K cache it was made for (a copied KvCache shares the pointer)
  bool warm = false;
  int captures = 0;
  std::string failed;          // why capture was given up ("" while it works)
};

namespace {

constexpr int kMaxCaptures = 8;  // buffers that keep moving mean capture does not pay: run eagerly

// Captures `step` into g.graph; false, with the reason kept in g.failed, when
// that cannot be done (then every later step runs eagerly).
bool capture(DecodeGraph& g, const std::function<void()>& step) {
  if (++g.captures > kMaxCaptures) {
    g.failed = "buffers moved after " + std::to_string(kMaxCaptures) + " captures";
    return false;
  }
  g.graph.begin_capture();
  try {
    step();
  } catch (const std::exception& e) {
    g.failed = e.what();
  }
  std::string why;
  if (!g.graph.end_capture(&why) && g.failed.empty()) g.failed = "capture failed: " + why;
  return g.failed.empty();
}

}  // namespace

Tensor Model::decode_graphed(const int32_t* ids, int B, KvCache& cache) {
  const int V = cfg_.vocab_size;
  if (!cache.graph || cache.graph->cache_key != cache.k[0].raw()) {
    cache.graph = std::make_shared<DecodeGraph>();
    DecodeGraph& g = *cache.graph;
    g.cache_key = cache.k[0].raw();
    g.ids = Tensor::empty({B}, DType::I32, Device::CUDA);
    g.pos = Tensor::empty({1}, DType::I32, Device::CUDA);
    g.logits = Tensor::empty({B, int64_t(V)}, DType::F32, Device::CUDA);
  }
  DecodeGraph& g = *cache.graph;
  const int32_t pos = cache.len;
  cuda_copy(g.ids.raw(), ids, sizeof(int32_t) * size_t(B), 0);
  cuda_copy(g.pos.raw(), &pos, sizeof(int32_t), 0);
  const SeqPos at(pos, g.pos.i32(), cache.capacity);
  auto step = [&] { decode_pass(g.ids, B, 1, cache, at, g.logits); };
  // The first step runs eagerly (it sizes the buffers the graph bakes in).
  const bool replay = g.warm && g.failed.empty() && (g.graph.current() || capture(g, step));
  if (replay)
    g.graph.replay();
  else
    step();
  decode_graph_status_ = replay ? "graph" : g.warm ? "eager (" + g.failed + ")" : "eager (warm-up)";
  g.warm = true;
  cache.len += 1;
  return g.logits.to(Device::CPU);
}

}  // namespace qtrain
