#include "models/gguf_weights.h"

#include <cstring>

#include "models/gguf_llama_names.h"

namespace qtrain {

const uint8_t* GgufRawTensor::row(int64_t r) const {
  const int64_t stored = permuted_heads > 0 ? rope_permuted_row(r, rows, permuted_heads) : r;
  return data + size_t(stored) * row_bytes;
}

GgufWeightSource::GgufWeightSource(std::shared_ptr<const GgufFile> file, int n_head, int n_kv_head)
    : file_(std::move(file)) {
  for (const GgufTensorInfo& t : file_->tensors()) {
    std::string hf = gguf_to_hf_llama_name(t.name);
    if (hf.empty())
      throw Error(file_->path() + ": tensor '" + t.name + "' is not a LLaMA tensor qtrain knows how to map");
    if (!ggml_type_info(t.type).dequantizable)
      throw Error(file_->path() + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
                  ", which qtrain cannot dequantize (supported: " +
                  ggml_type_names([](const GgmlTypeInfo& i) { return i.dequantizable; }, " ") + ")");
    Entry e{&t, Shape(t.ne.rbegin(), t.ne.rend()), rope_permuted_heads(hf, n_head, n_kv_head)};
    if (e.permuted_heads > 0) {
      const int64_t rows = e.shape[0];
      if (rows % e.permuted_heads != 0 || (rows / e.permuted_heads) % 2 != 0)
        throw Error(file_->path() + ": tensor '" + t.name + "' has " + std::to_string(rows) +
                    " rows, not a whole number of " + std::to_string(e.permuted_heads) + " even-sized heads");
    }
    entries_.emplace(hf, e);
  }
}

std::vector<std::string> GgufWeightSource::names() const {
  std::vector<std::string> out;
  for (auto& [name, e] : entries_) out.push_back(name);
  return out;
}

const GgufWeightSource::Entry& GgufWeightSource::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error(file_->path() + ": no tensor for '" + name + "'");
  return it->second;
}

Shape GgufWeightSource::shape(const std::string& name) const { return entry(name).shape; }

GgufRawTensor gguf_raw_tensor(const GgufFile& file, const GgufTensorInfo& info, int permuted_heads) {
  GgufRawTensor r;
  r.type = info.type;
  r.cols = info.ne.empty() ? 0 : info.ne[0];
  r.rows = r.cols == 0 ? 0 : info.numel() / r.cols;
  r.row_bytes = ggml_row_size(r.type, r.cols);
  // A 1-D permuted tensor (a Q/K bias) permutes elements, i.e. rows of length
  // 1: only meaningful for plain types, which is all a bias ever is.
  r.permuted_heads = info.ne.size() == 2 ? permuted_heads : 0;
  r.data = file.tensor_data(info);
  return r;
}

Tensor gguf_tensor_f32(const GgufFile& file, const GgufTensorInfo& info, int permuted_heads) {
  const GgufRawTensor r = gguf_raw_tensor(file, info, permuted_heads);
  Tensor out = Tensor::empty(Shape(info.ne.rbegin(), info.ne.rend()), DType::F32);
  float* dst = out.f32();
  for (int64_t i = 0; i < r.rows; ++i) dequantize_row(r.type, r.row(i), dst + i * r.cols, r.cols);
  if (info.ne.size() == 1 && permuted_heads > 0) {  // bias: permute elements
    std::vector<float> stored(dst, dst + r.cols);
    for (int64_t i = 0; i < r.cols; ++i) dst[i] = stored[size_t(rope_permuted_row(i, r.cols, permuted_heads))];
  }
  return out;
}

GgufRawTensor GgufWeightSource::raw(const std::string& name) const {
  const Entry& e = entry(name);
  return gguf_raw_tensor(*file_, *e.info, e.permuted_heads);
}

PackedTensor GgufWeightSource::load_packed(const std::string& name) const {
  const Entry& e = entry(name);
  const GgmlTypeInfo& info = ggml_type_info(e.info->type);
  if (e.shape.size() != 2 || info.block_size == 1) return {};  // plain floats
  auto p = std::make_shared<GgufPacked>();
  p->file = file_;
  p->raw = raw(name);
  return {"gguf", e.shape, p};
}

Tensor GgufWeightSource::load_f32(const std::string& name) const {
  const Entry& e = entry(name);
  return gguf_tensor_f32(*file_, *e.info, e.permuted_heads);
}

}  // namespace qtrain
