#include "data/batch.h"

#include <algorithm>

namespace qtrain {

Batch make_batch(const std::vector<Row>& rows, int T, int32_t pad_id) {
  Batch b;
  b.B = int(rows.size());
  b.T = T;
  b.inputs.assign(size_t(b.B) * T, pad_id);
  b.targets.assign(size_t(b.B) * T, kIgnoreTarget);
  for (int r = 0; r < b.B; ++r) {
    const Row& row = rows[r];
    int n = std::min<int>(T, int(row.ids.size()));
    int32_t* in = &b.inputs[size_t(r) * T];
    int32_t* tg = &b.targets[size_t(r) * T];
    for (int t = 0; t < n; ++t) in[t] = row.ids[t];
    for (int t = 0; t + 1 < n; ++t)
      if (row.loss[t + 1]) tg[t] = row.ids[t + 1];
  }
  return b;
}

}  // namespace qtrain
