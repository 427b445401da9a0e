#include "models/merged_model.h"

#include <map>

#include "kernels/error.h"

namespace qtrain {


std::unique_ptr<Model> merge_adapters_into_base(const Model& with_adapters, ModelOptions opt) {
  StateDictSource merged(with_adapters.hf_state_dict(/*merge_adapters=*/true));
  opt.targets = {};
  return Model::create(with_adapters.config(), merged, opt);
}

}  // namespace qtrain
