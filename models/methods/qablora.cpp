// QA-BLoRA as the paper runs it: an asymmetric 4-bit base in tiles (one scale
// and zero per 8 x 4 tile, models/asym4_weight.h) with the qablora adapter on
// the same tiles, so that merging keeps the model pure 4-bit. A model that
// already holds the stored 4-bit form (a merged export) is loaded as it is.
#include "models/asym4_weight.h"
#include "models/method.h"
#include "models/model.h"

QT_REGISTER_METHOD(qablora, {.name = "qablora",
                             .help = "QA-BLoRA: asymmetric 4-bit base (scale + zero per --qablora-tile, 8 x 4) with the qablora "
                                     "adapter on the same tiles; export --merge writes the pure 4-bit model",
                             .make_base = [](const qtrain::BaseRequest& r) -> std::unique_ptr<qtrain::BaseWeight> {
                               if (auto stored = qtrain::Asym4Weight::from_source(r.src, r.name, r.out, r.in))
                                 return stored;
                               return std::make_unique<qtrain::Asym4Weight>(r.load_f32(), r.opt.lora.qablora_tile_out,
                                                                            r.opt.lora.qablora_tile_in, r.name);
                             },
                             .adapter = "qablora",
                             // 4-bit codes + an F32 scale and zero per tile
                             .base_bits = [](const qtrain::ModelOptions& o) {
                               return 4 + 64.0 / (o.lora.qablora_tile_out * o.lora.qablora_tile_in);
                             }});
