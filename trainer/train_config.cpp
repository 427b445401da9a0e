#include "trainer/train_config.h"

namespace qtrain {

nlohmann::json to_json(const TrainConfig& c) {
  return {{"model", c.model},           {"tokenizer", c.tokenizer},     {"data", c.data},
          {"eval_data", c.eval_data},   {"split", c.split},             {"format", c.format},
          {"fields", c.fields},         {"method", c.method},           {"lora_r", c.lora_r},
          {"lora_alpha", c.lora_alpha}, {"lora_dropout", c.lora_dropout}, {"rslora", c.rslora}, {"int8_threshold", c.int8_threshold},
          {"target", c.target},         {"seq_len", c.seq_len},         {"batch_size", c.batch_size},
          {"grad_accum", c.grad_accum}, {"steps", c.steps},             {"epochs", c.epochs},
          {"lr", c.lr},                 {"schedule", c.schedule},       {"warmup", c.warmup},
          {"weight_decay", c.weight_decay}, {"clip", c.clip},           {"seed", c.seed},
          {"device", c.device},         {"attention", c.attention},     {"grad_checkpoint", c.grad_checkpoint}, {"pack", c.pack}};
}

}  // namespace qtrain
