// cuDNN fused flash attention (SDPA forward and backward) through the
// cudnn-frontend graph API. Why: attention was 38-49% of a GPT-2-medium /
// SmolLM2 LoRA step on qtrain's own wmma kernels, 4-6x slower than the flash
// kernels PyTorch uses; cuDNN's Hopper SDPA kernels close that gap.
//
// Layout: our [B,T,H,D] tensors are handed to cuDNN as dims [B,H,T,D] with
// strides [T*H*D, D, H*D, 1] (no copies); lse [B,H,T] is its Stats [B,H,T,1].
// One graph per (direction, B, T, Hq, Hkv, D), built on first use (the
// heuristic's first plan) and cached. The frontend is compiled with dynamic
// loading, so libcudnn.so.9 is needed only at run time, and only for this path.
#include "kernels/cuda/attention_cudnn.h"

#include <spdlog/spdlog.h>

#include <functional>

#include "kernels/attention.h"

#ifdef QTRAIN_HAS_CUDNN
#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING
#include <dlfcn.h>

#include <cmath>
#include <cudnn_frontend.h>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>

#include "kernels/cuda/context.cuh"
#include "kernels/elementwise.h"

namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;  // the frontend's dynamic-loading hook
}

namespace qtrain::cuda {
namespace {

namespace fe = cudnn_frontend;
using Graph = fe::graph::Graph;
using TA = fe::graph::Tensor_attributes;

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kdO, kdQ, kdK, kdV };

struct Library {
  cudnnHandle_t handle = nullptr;
  std::string error;  // non-empty: cuDNN is unusable here, and why
};

Library load_library() {
  Library lib;
  for (const char* name : {"libcudnn.so.9", "libcudnn.so"}) {
    fe::cudnn_dlhandle = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (fe::cudnn_dlhandle) break;
  }
  if (!fe::cudnn_dlhandle) {
    const char* e = dlerror();
    lib.error = std::string("libcudnn.so.9 could not be loaded (") + (e ? e : "no reason given") + ")";
    return lib;
  }
  try {
    size_t version = fe::detail::get_backend_version();
    if (version < 90000) {
      lib.error = "cuDNN " + std::to_string(version) + " is older than 9.0";
      return lib;
    }
    if (fe::detail::create_handle(&lib.handle) != CUDNN_STATUS_SUCCESS) {
      lib.error = "cudnnCreate failed";
      return lib;
    }
    if (fe::detail::set_stream(lib.handle, stream()) != CUDNN_STATUS_SUCCESS) {
      lib.error = "cudnnSetStream failed";
      return lib;
    }
    spdlog::debug("attention: cuDNN {} loaded", version);
  } catch (const std::exception& e) {  // a symbol missing from an odd libcudnn
    lib.error = std::string("cuDNN unusable: ") + e.what();
  }
  return lib;
}

Library& library() {
  static Library lib = load_library();
  return lib;
}

struct Dims {
  int64_t B, T, Hq, Hkv, D;
  bool packed = false;  // q, k, v (and dq, dk, dv) are column blocks of one [B,T,3*Hq*D] tensor
  std::vector<int64_t> dims(int64_t H) const { return {B, H, T, D}; }
  std::vector<int64_t> strides(int64_t H) const { return {T * H * D, D, H * D, 1}; }
  // q, k, v and their gradients: a token's row is 3*Hq*D long when packed.
  std::vector<int64_t> qkv_strides(int64_t H) const {
    return packed ? std::vector<int64_t>{T * 3 * Hq * D, D, 3 * Hq * D, 1} : strides(H);
  }
  std::vector<int64_t> stats_dims() const { return {B, Hq, T, 1}; }
  std::vector<int64_t> stats_strides() const { return {Hq * T, T, 1, 1}; }
};

Dims dims_of(const Tensor& q, const Tensor& k) { return {q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)}; }

struct Plan {
  std::shared_ptr<Graph> graph;
  int64_t workspace = 0;
  std::string error;  // non-empty: this shape is not supported
};

std::shared_ptr<Graph> new_graph() {
  auto g = std::make_shared<Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

// qkv: one of q, k, v or their gradients (packed strides when d.packed); else out or dout.
std::shared_ptr<TA> input(Graph& g, const char* name, Uid uid, const Dims& d, int64_t H, bool qkv) {
  return g.tensor(TA().set_name(name).set_uid(uid).set_dim(d.dims(H)).set_stride(qkv ? d.qkv_strides(H) : d.strides(H)));
}

void as_output(const std::shared_ptr<TA>& t, Uid uid, const Dims& d, int64_t H, bool qkv) {
  t->set_output(true).set_uid(uid).set_dim(d.dims(H)).set_stride(qkv ? d.qkv_strides(H) : d.strides(H));
}

Plan finish(std::shared_ptr<Graph> g) {
  Plan p;
  try {
    auto st = g->build(library().handle, {fe::HeurMode_t::A});
    if (!st.is_good()) {
      p.error = st.get_message();
      return p;
    }
    st = g->get_workspace_size(p.workspace);
    if (!st.is_good()) {
      p.error = st.get_message();
      return p;
    }
  } catch (const std::exception& e) {
    p.error = e.what();
    return p;
  }
  p.graph = std::move(g);
  return p;
}

Plan build_forward(const Dims& d) {
  auto g = new_graph();
  auto Q = input(*g, "Q", kQ, d, d.Hq, true), K = input(*g, "K", kK, d, d.Hkv, true),
       V = input(*g, "V", kV, d, d.Hkv, true);
  auto opts = fe::graph::SDPA_attributes()
                  .set_name("qtrain_sdpa")
                  .set_generate_stats(true)
                  .set_causal_mask(true)
                  .set_attn_scale(1.f / std::sqrt(float(d.D)));
  auto [O, stats] = g->sdpa(Q, K, V, opts);
  as_output(O, kO, d, d.Hq, false);
  stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim(d.stats_dims()).set_stride(
      d.stats_strides());
  return finish(std::move(g));
}

Plan build_backward(const Dims& d) {
  auto g = new_graph();
  auto Q = input(*g, "Q", kQ, d, d.Hq, true), K = input(*g, "K", kK, d, d.Hkv, true),
       V = input(*g, "V", kV, d, d.Hkv, true);
  auto O = input(*g, "O", kO, d, d.Hq, false), dO = input(*g, "dO", kdO, d, d.Hq, false);
  auto stats = g->tensor(TA().set_name("Stats").set_uid(kStats).set_dim(d.stats_dims()).set_stride(d.stats_strides())
                             .set_data_type(fe::DataType_t::FLOAT));
  auto opts = fe::graph::SDPA_backward_attributes()
                  .set_name("qtrain_sdpa_backward")
                  .set_causal_mask(true)
                  .set_attn_scale(1.f / std::sqrt(float(d.D)));
  auto [dQ, dK, dV] = g->sdpa_backward(Q, K, V, O, dO, stats, opts);
  as_output(dQ, kdQ, d, d.Hq, true);
  as_output(dK, kdK, d, d.Hkv, true);
  as_output(dV, kdV, d, d.Hkv, true);
  return finish(std::move(g));
}

// The plan for this direction and shape, built once; nullptr (with *why) when
// cuDNN is missing or refuses the shape. A refusal is remembered: no rebuild.
const Plan* plan_for(bool backward, const Dims& d, std::string* why) {
  Library& lib = library();
  if (!lib.error.empty()) {
    *why = lib.error;
    return nullptr;
  }
  static std::map<std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, bool>, Plan> cache;
  auto key = std::make_tuple(backward, d.B, d.T, d.Hq, d.Hkv, d.D, d.packed);
  auto it = cache.find(key);
  if (it == cache.end()) {
    it = cache.emplace(key, backward ? build_backward(d) : build_forward(d)).first;
    if (!it->second.error.empty())
      spdlog::debug("attention: cuDNN has no {} plan for B{} T{} Hq{} Hkv{} D{}{}: {}", backward ? "backward" : "forward",
                    d.B, d.T, d.Hq, d.Hkv, d.D, d.packed ? " packed" : "", it->second.error);
  }
  if (!it->second.graph) {
    *why = "cuDNN has no plan for this shape: " + it->second.error;
    return nullptr;
  }
  return &it->second;
}

void run(const Plan& p, std::unordered_map<int64_t, void*>& pack, const char* what) {
  void* ws = p.workspace > 0 ? Context::get().scratch(Scratch::AttnWork, size_t(p.workspace)) : nullptr;
  auto st = p.graph->execute(library().handle, pack, ws);
  if (!st.is_good()) throw Error(std::string(what) + ": cuDNN execute failed: " + st.get_message(), ErrorKind::Runtime);
}

bool run_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, std::string* why) {
  const Dims d = dims_of(q, k);
  const Plan* p = plan_for(false, d, why);
  if (!p) return false;
  std::unordered_map<int64_t, void*> pack = {
      {kQ, q.raw()}, {kK, k.raw()}, {kV, v.raw()}, {kO, out.raw()}, {kStats, lse.raw()}};
  run(*p, pack, "attention_forward");
  return true;
}

bool run_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                  std::string* why) {
  const Dims d = dims_of(q, k);
  const Plan* p = plan_for(true, d, why);
  if (!p) return false;
  // cuDNN writes BF16 gradients; an F32 dq/dk/dv goes through a BF16 scratch
  // (the same rounding the own kernels' BF16 path has).
  Context& ctx = Context::get();
  auto bf16_target = [&](Tensor t, Scratch slot) {
    if (t.dtype() == DType::BF16) return t;
    return Tensor::wrap(ctx.scratch(slot, size_t(t.numel()) * 2), t.shape(), DType::BF16, Device::CUDA);
  };
  Tensor gq = bf16_target(dq, Scratch::AttnDq), gk = bf16_target(dk, Scratch::AttnDk), gv = bf16_target(dv, Scratch::AttnDv);
  std::unordered_map<int64_t, void*> pack = {{kQ, q.raw()},   {kK, k.raw()},      {kV, v.raw()},
                                             {kO, out.raw()}, {kdO, dout.raw()},  {kStats, lse.raw()},
                                             {kdQ, gq.raw()}, {kdK, gk.raw()},    {kdV, gv.raw()}};
  run(*p, pack, "attention_backward");
  if (gq.raw() != dq.raw()) cuda::convert(dq, gq);
  if (gk.raw() != dk.raw()) cuda::convert(dk, gk);
  if (gv.raw() != dv.raw()) cuda::convert(dv, gv);
  return true;
}

// The packed layout: q, k, v are qkv's column blocks 0, C, 2C of each token row.
Dims packed_dims(const Tensor& out) { return {out.size(0), out.size(1), out.size(2), out.size(2), out.size(3), true}; }
void* col_block(const Tensor& qkv, int i, int64_t C) { return static_cast<char*>(qkv.raw()) + i * C * 2; }  // BF16

bool packed_ok(std::initializer_list<const Tensor*> ts, int64_t C) {
  for (const Tensor* t : ts)
    if (t->dtype() != DType::BF16 || reinterpret_cast<uintptr_t>(t->raw()) % 16 != 0) return false;
  return C % 8 == 0;  // each block 16-byte aligned
}

bool run_forward_qkv(Tensor out, Tensor lse, Tensor qkv, std::string* why) {
  const Dims d = packed_dims(out);
  const int64_t C = d.Hq * d.D;
  if (!packed_ok({&out, &qkv}, C)) return false;
  const Plan* p = plan_for(false, d, why);
  if (!p) return false;
  std::unordered_map<int64_t, void*> pack = {{kQ, col_block(qkv, 0, C)}, {kK, col_block(qkv, 1, C)},
                                             {kV, col_block(qkv, 2, C)}, {kO, out.raw()}, {kStats, lse.raw()}};
  run(*p, pack, "attention_forward_qkv");
  return true;
}

bool run_backward_qkv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, std::string* why) {
  const Dims d = packed_dims(out);
  const int64_t C = d.Hq * d.D;
  if (!packed_ok({&dqkv, &dout, &qkv, &out}, C)) return false;
  const Plan* p = plan_for(true, d, why);
  if (!p) return false;
  std::unordered_map<int64_t, void*> pack = {
      {kQ, col_block(qkv, 0, C)},   {kK, col_block(qkv, 1, C)},   {kV, col_block(qkv, 2, C)},
      {kO, out.raw()},              {kdO, dout.raw()},            {kStats, lse.raw()},
      {kdQ, col_block(dqkv, 0, C)}, {kdK, col_block(dqkv, 1, C)}, {kdV, col_block(dqkv, 2, C)}};
  run(*p, pack, "attention_backward_qkv");
  return true;
}

}  // namespace
}  // namespace qtrain::cuda
#endif  // QTRAIN_HAS_CUDNN

namespace qtrain::cuda {
namespace {

// The --attention policy around one cuDNN attempt.
bool dispatch(const char* what, const std::function<bool(std::string*)>& attempt) {
  const AttentionImpl impl = attention_impl();
  if (impl != AttentionImpl::Own) {
    std::string why;
    if (attempt(&why)) {
      note_attention_impl("cudnn");
      return true;
    }
    if (impl == AttentionImpl::Cudnn)
      throw Error(std::string(what) + " with --attention cudnn: " + why, ErrorKind::BadInput);
    static bool logged = false;
    if (!logged) spdlog::info("attention: qtrain's own kernels ({})", why);
    logged = true;
  }
  note_attention_impl("own");
  return false;
}

// The packed ops (kernels/attention.h) try cuDNN quietly: a refusal sends the caller to the split
// path, whose attention_forward/backward then apply the --attention policy (and log or raise why).
bool packed_attempt(const std::function<bool(std::string*)>& attempt) {
#ifdef QTRAIN_HAS_CUDNN
  if (attention_impl() == AttentionImpl::Own || !library().error.empty()) return false;
  std::string why;
  if (!attempt(&why)) return false;
  note_attention_impl("cudnn-packed");
  return true;
#else
  (void)attempt;
  return false;
#endif
}

}  // namespace

bool cudnn_attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v) {
  return dispatch("attention_forward", [&](std::string* why) {
#ifdef QTRAIN_HAS_CUDNN
    return run_forward(out, lse, q, k, v, why);
#else
    *why = "qtrain was built without the cudnn-frontend headers";
    return false;
#endif
  });
}

bool cudnn_attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                              Tensor lse) {
  return dispatch("attention_backward", [&](std::string* why) {
#ifdef QTRAIN_HAS_CUDNN
    return run_backward(dq, dk, dv, dout, q, k, v, out, lse, why);
#else
    *why = "qtrain was built without the cudnn-frontend headers";
    return false;
#endif
  });
}

bool attention_forward_qkv(Tensor out, Tensor lse, Tensor qkv) {
  return packed_attempt([&](std::string* why) {
#ifdef QTRAIN_HAS_CUDNN
    return run_forward_qkv(out, lse, qkv, why);
#else
    (void)why;
    return false;
#endif
  });
}

bool attention_backward_qkv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse) {
  return packed_attempt([&](std::string* why) {
#ifdef QTRAIN_HAS_CUDNN
    return run_backward_qkv(dqkv, dout, qkv, out, lse, why);
#else
    (void)why;
    return false;
#endif
  });
}

}  // namespace qtrain::cuda
