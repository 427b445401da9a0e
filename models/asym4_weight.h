// QA-BLoRA's frozen base: asymmetric 4-bit weights in 2-D tiles of tile_out
// output rows x tile_in input columns, one F32 scale and zero (offset) per tile,
// w = scale * q + zero, q in 0..15, min-max quantized (kernels/asym4.h). The
// tiles are the QA-BLoRA adapter's (models/adapters/qablora.h), so the adapter's
// change, constant on each tile, merges into the zeros alone: the merged model
// keeps every code and scale and stays pure 4-bit (with_zero_shift).
//
// Stored (qtrain export --merge of a qablora model, models/asym4_export.h) as
//   <m>.weight              U8 [out, in / 2]  codes, two per byte, even column low
//   <m>.weight.asym4_scale  F32 [out / tile_out, in / tile_in]
//   <m>.weight.asym4_zero   F32 [out / tile_out, in / tile_in]
// CUDA: the parts are uploaded on first use; each product dequantizes into a
// BF16 scratch (DequantWeight).
#pragma once
#include <memory>
#include <string>

#include "kernels/asym4.h"
#include "models/quant_weight.h"
#include "models/weight_source.h"

namespace qtrain {

class Asym4Weight : public DequantWeight {
 public:
  // Quantizes w (F32 host [out, in]); a user error naming `name` unless the tiles divide it.
  Asym4Weight(const Tensor& w_f32, int64_t tile_out, int64_t tile_in, const std::string& name);
  // From stored parts (host): codes U8 [out, in / 2], scale and zero F32 [tiles].
  Asym4Weight(Asym4Tiles t, Tensor codes, Tensor scale, Tensor zero);
  // The stored form of `name` in src, if src holds one (its .asym4_scale exists); null otherwise.
  static std::unique_ptr<Asym4Weight> from_source(const WeightSource& src, const std::string& name, int64_t out,
                                                  int64_t in);
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const override;
  void dequantize_on_device(Tensor out) const override;
  size_t bytes() const override { return size_t(codes_.nbytes() + scale_.nbytes() + zero_.nbytes()); }

  const Asym4Tiles& tiles() const { return t_; }
  const Tensor& codes() const { return codes_; }
  const Tensor& scale() const { return scale_; }
  const Tensor& zero() const { return zero_; }
  // The same codes and scales, zero + shift (F32 host, one value per tile).
  std::unique_ptr<Asym4Weight> with_zero_shift(const Tensor& shift) const;

 private:
  Asym4Tiles t_;
  Tensor codes_, scale_, zero_;           // host
  mutable Tensor dcodes_, dscale_, dzero_;  // GPU copies, made on first CUDA use
};

}  // namespace qtrain
