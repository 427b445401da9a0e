// Incremental decoding: the KV cache, the decode step, and the attention
// call every architecture shares, which either runs full causal attention
// (training, eval) or appends to the cache and attends to it (decoding).
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "models/model.h"

#include <optional>

namespace qtrain {

KvCache Model::new_kv_cache(int B, int capacity) const {
  if (B <= 0 || capacity <= 0) throw Error("KV cache: batch and capacity must be positive");
  if (position_limit() > 0 && capacity > position_limit())
    throw Error("KV cache of " + std::to_string(capacity) + " tokens exceeds the model's " +
                std::to_string(position_limit()) + " positions");
  KvCache c;
  c.B = B;
  c.capacity = capacity;
  const int64_t Hkv = cfg_.n_kv_head, D = cfg_.head_dim;
  for (int l = 0; l < cfg_.n_layer; ++l) {
    c.k.push_back(Tensor::empty({B, capacity, Hkv, D}, act_dtype_, opt_.device));
    c.v.push_back(Tensor::empty({B, capacity, Hkv, D}, act_dtype_, opt_.device));
  }
  return c;
}

std::pair<Tensor, Tensor> Model::decode_cache(int l) const {
  if (mode_ != ForwardMode::Decode || !cache_) return {};
  return {cache_->k[size_t(l)], cache_->v[size_t(l)]};
}

void Model::attend(int l, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, float rope_theta, bool appended) {
  if (mode_ != ForwardMode::Decode) {
    QT_CHECK(!appended, "attend: nothing is appended outside decoding");
    if (rope_theta > 0.f) rope_qk_forward(q, k, rope_theta, pos_);
    return attention_forward(out, lse, q, k, v);
  }
  KvCache& c = *cache_;
  // Append this pass's keys and values at positions pos_ .. pos_ + T_ - 1 of every row.
  Tensor kc = c.k[size_t(l)], vc = c.v[size_t(l)];
  if (appended) {
    // the q+k+v GEMV's epilogue rotated q and k and wrote k, v to the cache
  } else if (rope_theta > 0.f) {
    rope_append_kv(q, k, v, kc, vc, rope_theta, pos_);
  } else {
    kv_cache_write(kc, k, pos_);
    kv_cache_write(vc, v, pos_);
  }
  // A prompt on an empty cache is ordinary causal attention (the flash
  // kernels); later tokens read the cache. (A captured step never starts at 0.)
  if (pos_.first == 0) return attention_forward(out, lse, q, k, v);
  attention_cached(out, q, kc, vc, pos_);
}

Tensor Model::decode(const int32_t* ids, int B, int T_new, KvCache& cache) {
  if (cache.B != B || int(cache.k.size()) != cfg_.n_layer)
    throw Error("decode: the KV cache was made for " + std::to_string(cache.B) + " rows, not " + std::to_string(B));
  if (T_new <= 0) throw Error("decode: no tokens to run");
  if (cache.len + T_new > cache.capacity)
    throw Error("decode: " + std::to_string(cache.len + T_new) + " tokens exceed the KV cache's capacity of " +
                std::to_string(cache.capacity));
  const int64_t N = int64_t(B) * T_new;
  for (int64_t i = 0; i < N; ++i)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(ids[i]) + " is outside the model's vocabulary (" +
                  std::to_string(cfg_.vocab_size) + ")");
  if (T_new == 1 && cache.len > 0 && opt_.device == Device::CUDA) {
    if (decode_graphs_) return decode_graphed(ids, B, cache);
    decode_graph_status_ = "eager";
  }
  Tensor ids_dev = Tensor::wrap(const_cast<int32_t*>(ids), {N}, DType::I32).to(opt_.device);
  Tensor logits = Tensor::empty({B, int64_t(cfg_.vocab_size)}, DType::F32, opt_.device);
  decode_pass(ids_dev, B, T_new, cache, SeqPos(cache.len), logits);
  cache.len += T_new;
  return logits.to(Device::CPU);
}

namespace {

// A one-token GPU step reads each LoRA factor once, and every product with an
// F32 master converted it to BF16 first: 448 conversion kernels, 0.74 ms of a
// 7.4 ms LLaMA-7B step. The step instead reads BF16 views of one copy of the
// trainable values that the cache keeps (the same rounding, so the same
// numbers); the masters come back when the step ends. Which parameters may be
// read this way is each adapter's call (Adapter::decode_factors).
class DecodeFactorViews {
 public:
  DecodeFactorViews(ParamSet& ps, std::vector<Param*> factors, Tensor& copy) {
    if (!copy.defined()) {
      copy = Tensor::empty(ps.values().shape(), DType::BF16, ps.values().device());
      convert(copy, ps.values());
    }
    for (Param* p : factors) {
      if (p->offset % 8 != 0) continue;  // 16-byte aligned BF16 views only, as products want
      saved_.emplace_back(p, p->value);
      p->value = copy.flat(p->offset, p->offset + p->value.numel()).view(p->shape);
    }
  }
  ~DecodeFactorViews() {
    for (auto& [p, v] : saved_) p->value = v;
  }

 private:
  std::vector<std::pair<Param*, Tensor>> saved_;
};

}  // namespace

std::vector<Param*> Model::decode_factors() const {
  std::vector<Param*> out;
  for (const Linear* l : linears_)
    if (Adapter* a = l->adapter())
      for (Param* p : a->decode_factors()) out.push_back(p);
  return out;
}

void Model::decode_pass(Tensor ids_dev, int B, int T_new, KvCache& cache, SeqPos pos, Tensor logits) {
  struct Reset {  // leave the model in eval mode whatever happens
    Model* m;
    ~Reset() { m->mode_ = ForwardMode::Eval, m->cache_ = nullptr, m->pos_ = SeqPos(), m->pending_residual_ = Tensor(); }
  } reset{this};
  std::optional<DecodeFactorViews> factor_views;
  if (T_new == 1 && opt_.device == Device::CUDA) {
    std::vector<Param*> factors = decode_factors();
    if (!factors.empty()) factor_views.emplace(params_, std::move(factors), cache.factors);
  }
  mode_ = ForwardMode::Decode;
  pending_residual_ = Tensor();
  cache_ = &cache;
  pos_ = pos;
  B_ = B;
  T_ = T_new;
  ++step_counter_;
  const int64_t N = int64_t(B) * T_new, C = cfg_.d_model;
  Tensor x = Tensor::empty({N, C}, act_dtype_, opt_.device);
  WeightSlot* wpe = position_embedding();
  embedding_forward(x, ids_dev, token_embedding().value, wpe ? wpe->value : Tensor(), T_new, pos_);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    Tensor y = Tensor::empty({N, C}, act_dtype_, opt_.device);
    layer_forward(l, x, y, false, LayerKeep::None);
    x = y;
  }
  // Only each row's last position is needed for the next token.
  Tensor last = x;
  if (T_new > 1) {
    last = Tensor::empty({B, C}, act_dtype_, opt_.device);
    for (int64_t b = 0; b < B; ++b) last.rows(b, b + 1).copy_from(x.rows((b + 1) * T_new - 1, (b + 1) * T_new));
  }
  Tensor h = Tensor::empty({B, C}, act_dtype_, opt_.device);
  final_norm_forward(h, last);
  gemm(logits, h, lm_head().value, false, true);
}

}  // namespace qtrain
