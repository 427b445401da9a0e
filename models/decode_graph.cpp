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
#include <cstring>

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
}

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
  auto eager = [&] { decode_pass(g.ids, B, 1, cache, at, g.logits); };
  if (!g.failed.empty()) {
    eager();
    decode_graph_status_ = "eager (" + g.failed + ")";
  } else if (!g.warm) {
    eager();
    g.warm = true;
    decode_graph_status_ = "eager (warm-up)";
  } else {
    if (!g.graph.current()) {
      std::string why;
      bool ok = ++g.captures <= kMaxCaptures;
      if (!ok) why = "buffers moved after " + std::to_string(kMaxCaptures) + " captures";
      if (ok) {
        g.graph.begin_capture();
        try {
          eager();
        } catch (const std::exception& e) {
          why = e.what();
          ok = false;
        }
        std::string end_why;
        if (!g.graph.end_capture(&end_why) && ok) ok = false, why = "capture failed: " + end_why;
      }
      if (!ok) {
        g.failed = why;
        eager();
        decode_graph_status_ = "eager (" + why + ")";
        cache.len += 1;
        return g.logits.to(Device::CPU);
      }
    }
    g.graph.replay();
    decode_graph_status_ = "graph";
  }
  cache.len += 1;
  return g.logits.to(Device::CPU);
}

}  // namespace qtrain
