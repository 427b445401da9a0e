#include <CLI/CLI.hpp>

#include "launch/commands.h"
#include "models/loftq.h"
#include "trainer/setup.h"

namespace qtrain::launch {

void add_base_flags(CLI::App& sub, BaseFlags& f) {
  sub.add_option("--loftq-iters", f.loftq_iters, kLoftqRebuildHelp)->check(CLI::Range(-1, 1000))->capture_default_str();
  sub.add_option("--hqq-bits", f.hqq_bits, "hqq-lora: the --hqq-bits the adapter was trained with (4 or 2)")
      ->check(CLI::IsMember({4, 2}))
      ->capture_default_str();
  sub.add_option("--lowra-bits", f.lowra_bits, "lowra: the --lowra-bits the adapter was trained with")
      ->check(CLI::Range(1.0, 4.0))
      ->capture_default_str();
  sub.add_option("--bitnet-subln", f.bitnet_subln,
                 "bitnet, bitnet-lora on float weights: the --bitnet-subln the model was trained with (a ternary "
                 "export records its own)")
      ->capture_default_str();
}

void apply_base_flags(const BaseFlags& f, ModelSpec& ms) {
  ms.loftq_iters = f.loftq_iters;
  ms.hqq_bits = f.hqq_bits;
  ms.lowra_bits = f.lowra_bits;
  ms.bitnet_subln = f.bitnet_subln;
}

}  // namespace qtrain::launch
