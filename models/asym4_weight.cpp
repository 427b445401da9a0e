#include "models/asym4_weight.h"

#include <algorithm>
#include <cmath>

namespace qtrain {

namespace {
void check_tiles(const Asym4Tiles& t, const std::string& name) {
  if (t.tile_out < 1 || t.tile_in < 2 || t.tile_in % 2 != 0 || t.out % t.tile_out != 0 || t.in % t.tile_in != 0)
    throw Error(name + ": [out " + std::to_string(t.out) + ", in " + std::to_string(t.in) + "] is not divisible into " +
                std::to_string(t.tile_out) + " x " + std::to_string(t.tile_in) +
                " asymmetric 4-bit tiles (tile_in must be even)");
}
}  // namespace

Asym4Weight::Asym4Weight(const Tensor& w_f32, int64_t tile_out, int64_t tile_in, const std::string& name)
    : DequantWeight(w_f32.size(0), w_f32.size(1)), t_{w_f32.size(0), w_f32.size(1), tile_out, tile_in} {
  check_tiles(t_, name);
  const Tensor w = w_f32.device() == Device::CPU && w_f32.dtype() == DType::F32 ? w_f32 : w_f32.to(Device::CPU, DType::F32);
  const int64_t to = t_.out / tile_out, ti = t_.in / tile_in;
  codes_ = Tensor::zeros({t_.out, t_.in / 2}, DType::U8);
  scale_ = Tensor::empty({to, ti}, DType::F32);
  zero_ = Tensor::empty({to, ti}, DType::F32);
  const float* pw = w.f32();
  uint8_t* pc = static_cast<uint8_t*>(codes_.raw());
  for (int64_t a = 0; a < to; ++a)
    for (int64_t b = 0; b < ti; ++b) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t o = a * tile_out; o < (a + 1) * tile_out; ++o)
        for (int64_t i = b * tile_in; i < (b + 1) * tile_in; ++i) {
          lo = std::min(lo, pw[o * t_.in + i]);
          hi = std::max(hi, pw[o * t_.in + i]);
        }
      const float s = hi > lo ? (hi - lo) / 15.f : 1.f;  // a constant tile: every code 0, w = zero
      scale_.f32()[a * ti + b] = s;
      zero_.f32()[a * ti + b] = lo;
      for (int64_t o = a * tile_out; o < (a + 1) * tile_out; ++o)
        for (int64_t i = b * tile_in; i < (b + 1) * tile_in; ++i) {
          const int q = std::clamp(int(std::lrint((pw[o * t_.in + i] - lo) / s)), 0, 15);
          pc[o * (t_.in / 2) + i / 2] |= uint8_t((i & 1) ? q << 4 : q);
        }
    }
}

Asym4Weight::Asym4Weight(Asym4Tiles t, Tensor codes, Tensor scale, Tensor zero)
    : DequantWeight(t.out, t.in), t_(t), codes_(std::move(codes)), scale_(std::move(scale)), zero_(std::move(zero)) {
  check_tiles(t_, "asym4 weight");
}

std::unique_ptr<Asym4Weight> Asym4Weight::from_source(const WeightSource& src, const std::string& name, int64_t out,
                                                      int64_t in) {
  if (!src.has(name + ".asym4_scale")) return nullptr;
  for (const char* part : {".asym4_zero", ""})
    if (!src.has(name + part)) throw Error(src.path() + ": missing tensor '" + name + part + "' (asymmetric 4-bit weight)");
  Tensor c = src.load_f32(name), s = src.load_f32(name + ".asym4_scale"), z = src.load_f32(name + ".asym4_zero");
  if (c.shape() != Shape{out, in / 2} || s.ndim() != 2 || z.shape() != s.shape() || s.size(0) < 1 || s.size(1) < 1 ||
      out % s.size(0) != 0 || in % s.size(1) != 0)
    throw Error(src.path() + ": tensor '" + name + "' (codes " + shape_str(c.shape()) + ", scale " + shape_str(s.shape()) +
                ", zero " + shape_str(z.shape()) + ") is not an asymmetric 4-bit [" + std::to_string(out) + ", " +
                std::to_string(in) + "] weight");
  Tensor u8 = Tensor::empty(c.shape(), DType::U8);
  uint8_t* pu = static_cast<uint8_t*>(u8.raw());
  const Tensor cf = c.to(Device::CPU, DType::F32);
  for (int64_t k = 0; k < cf.numel(); ++k) {
    const float v = cf.f32()[k];
    if (!(v >= 0.f && v <= 255.f) || v != std::floor(v))
      throw Error(src.path() + ": tensor '" + name + "' holds " + std::to_string(v) + ", not a packed byte");
    pu[k] = uint8_t(v);
  }
  Asym4Tiles t{out, in, out / s.size(0), in / s.size(1)};
  return std::make_unique<Asym4Weight>(t, u8, s.to(Device::CPU, DType::F32), z.to(Device::CPU, DType::F32));
}

void Asym4Weight::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  asym4_dequantize(Tensor::wrap(out, {r1 - r0, t_.in}, DType::F32), codes_, scale_, zero_, t_, r0);
}

void Asym4Weight::dequantize_on_device(Tensor out) const {
  if (!dcodes_.defined()) {
    dcodes_ = codes_.to(Device::CUDA);
    dscale_ = scale_.to(Device::CUDA);
    dzero_ = zero_.to(Device::CUDA);
  }
  asym4_dequantize(out, dcodes_, dscale_, dzero_, t_, 0);
}

std::unique_ptr<Asym4Weight> Asym4Weight::with_zero_shift(const Tensor& shift) const {
  QT_CHECK(shift.numel() == zero_.numel() && shift.dtype() == DType::F32, "with_zero_shift: one F32 value per tile");
  Tensor z = zero_.clone();
  for (int64_t k = 0; k < z.numel(); ++k) z.f32()[k] += shift.f32()[k];
  return std::make_unique<Asym4Weight>(t_, codes_.clone(), scale_.clone(), z);
}

}  // namespace qtrain
