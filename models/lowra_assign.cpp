// LowRA channel-wise precision assignment: see lowra_assign.h.
#include "models/lowra_assign.h"

#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <random>
#include <sstream>
#include <string>

#include "kernels/error.h"

namespace qtrain {
namespace {

std::string precisions_str(const std::vector<int>& p) {
  std::string s = "{";
  for (size_t i = 0; i < p.size(); ++i) s += (i ? "," : "") + std::to_string(p[i]);
  return s + "}";
}

std::string num_str(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform double in [0, 1) from 53 random bits: the same on every standard library
// (std::uniform_real_distribution is implementation-defined).
double u01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

double dist2(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  const double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}

// Nearest centroid (ties to the lowest id).
int nearest(const std::array<double, 3>& p, const std::vector<std::array<double, 3>>& cent) {
  int best = 0;
  double bd = dist2(p, cent[0]);
  for (size_t c = 1; c < cent.size(); ++c) {
    const double d = dist2(p, cent[c]);
    if (d < bd) bd = d, best = int(c);
  }
  return best;
}

// floor(avg * w) for a positive integer w, robust to avg not being representable: a product
// within 1e-12 (relative) of an integer is taken as that integer, so 1.9 * 10 is 19, not 18.
int64_t floor_product(double avg, int64_t w) {
  const double x = avg * double(w);
  const double r = std::nearbyint(x);
  if (std::abs(x - r) <= 1e-12 * std::max(1.0, std::abs(x))) return int64_t(r);
  return int64_t(std::floor(x));
}

const char* glpk_code_name(int rc) {
  switch (rc) {
    case GLP_EBOUND: return "GLP_EBOUND (invalid bounds)";
    case GLP_EROOT: return "GLP_EROOT (no root LP optimum)";
    case GLP_ENOPFS: return "GLP_ENOPFS (no primal feasible solution)";
    case GLP_ENODFS: return "GLP_ENODFS (no dual feasible solution)";
    case GLP_EFAIL: return "GLP_EFAIL (solver failure)";
    case GLP_EMIPGAP: return "GLP_EMIPGAP (gap tolerance reached)";
    case GLP_ETMLIM: return "GLP_ETMLIM (time limit)";
    case GLP_ESTOP: return "GLP_ESTOP (stopped)";
    default: return "unknown GLPK return code";
  }
}

// RAII for a GLPK problem and its terminal-output switch.
struct GlpkProblem {
  glp_prob* p;
  int prev_term;
  GlpkProblem() : p(glp_create_prob()), prev_term(glp_term_out(GLP_OFF)) {}
  ~GlpkProblem() {
    glp_delete_prob(p);
    glp_term_out(prev_term);
  }
  GlpkProblem(const GlpkProblem&) = delete;
  GlpkProblem& operator=(const GlpkProblem&) = delete;
};

}  // namespace

std::vector<int> checked_precisions(const std::vector<int>& precisions) {
  if (precisions.empty()) throw Error("lowra precisions: empty; allowed is a non-empty subset of {1,2,4}");
  std::vector<int> p = precisions;
  std::sort(p.begin(), p.end());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != 1 && p[i] != 2 && p[i] != 4)
      throw Error("lowra precisions: " + std::to_string(p[i]) + " bits is not allowed; expected a subset of {1,2,4}");
    if (i && p[i] == p[i - 1])
      throw Error("lowra precisions: " + std::to_string(p[i]) + " bits listed twice in " + precisions_str(precisions));
  }
  return p;
}

int mse_slot(int bits) {
  switch (bits) {
    case 1: return 0;
    case 2: return 1;
    case 4: return 2;
  }
  throw Error("lowra: " + std::to_string(bits) + " bits has no MSE slot (expected 1, 2 or 4)");
}

std::array<double, 3> lowra_feature(const ChannelCost& c, const std::vector<int>& precisions) {
  std::array<double, 3> f{0, 0, 0};
  for (int p : precisions) {
    const int s = mse_slot(p);
    f[s] = std::log10(c.mse[s] + 1e-30);
  }
  return f;
}

// ---- K-means ---------------------------------------------------------------------------

KMeans3Result kmeans3_full(const std::vector<std::array<double, 3>>& pts, int k, int iters, uint64_t seed) {
  if (k < 1) throw Error("lowra clusters: " + std::to_string(k) + " (expected >= 1)");
  if (iters < 0) throw Error("lowra kmeans_iters: " + std::to_string(iters) + " (expected >= 0)");
  KMeans3Result r;
  const size_t n = pts.size();
  if (n == 0) return r;
  for (size_t i = 0; i < n; ++i)
    for (double v : pts[i])
      if (!std::isfinite(v)) throw Error("kmeans3: point " + std::to_string(i) + " is not finite");
  k = int(std::min<size_t>(size_t(k), n));

  // k-means++: the first centre uniform, each next one with probability ∝ D(x)^2.
  std::mt19937_64 rng(seed);
  auto& cent = r.centroids;
  cent.reserve(size_t(k));
  cent.push_back(pts[size_t(rng() % n)]);
  std::vector<double> d2(n);
  for (size_t i = 0; i < n; ++i) d2[i] = dist2(pts[i], cent[0]);
  while (int(cent.size()) < k) {
    double total = 0;
    for (double d : d2) total += d;
    if (!(total > 0)) {  // every point sits on a centre: the remaining ones own nothing
      cent.push_back(cent[0]);
      continue;
    }
    const double target = u01(rng) * total;
    double acc = 0;
    size_t pick = n;
    for (size_t i = 0; i < n; ++i) {
      acc += d2[i];
      if (acc > target && d2[i] > 0) {
        pick = i;
        break;
      }
    }
    if (pick == n)  // rounding at the far end: the last point with a positive distance
      for (size_t i = n; i-- > 0;)
        if (d2[i] > 0) {
          pick = i;
          break;
        }
    cent.push_back(pts[pick]);
    for (size_t i = 0; i < n; ++i) d2[i] = std::min(d2[i], dist2(pts[i], cent.back()));
  }

  r.labels.resize(n);
  for (size_t i = 0; i < n; ++i) r.labels[i] = nearest(pts[i], cent);

  std::vector<std::array<double, 3>> sum(static_cast<size_t>(k));
  std::vector<int64_t> cnt(static_cast<size_t>(k));
  for (int it = 0; it < iters; ++it) {
    std::fill(sum.begin(), sum.end(), std::array<double, 3>{0, 0, 0});
    std::fill(cnt.begin(), cnt.end(), 0);
    for (size_t i = 0; i < n; ++i) {
      auto& s = sum[size_t(r.labels[i])];
      for (int d = 0; d < 3; ++d) s[d] += pts[i][d];
      ++cnt[size_t(r.labels[i])];
    }
    for (size_t c = 0; c < size_t(k); ++c)
      if (cnt[c] > 0)
        for (int d = 0; d < 3; ++d) cent[c][d] = sum[c][d] / double(cnt[c]);
    int64_t changed = 0;
    for (size_t i = 0; i < n; ++i) {
      const int l = nearest(pts[i], cent);
      if (l != r.labels[i]) r.labels[i] = l, ++changed;
    }
    r.iters_run = it + 1;
    if (changed == 0) break;
  }
  return r;
}

std::vector<int> kmeans3(const std::vector<std::array<double, 3>>& pts, int k, int iters, uint64_t seed) {
  return kmeans3_full(pts, k, iters, seed).labels;
}

// ---- cluster-level ILP -----------------------------------------------------------------

ClusterIlpResult solve_cluster_ilp(const std::vector<int64_t>& sizes,
                                   const std::vector<std::array<double, 3>>& cost,
                                   const std::vector<int>& precisions_in, int64_t omega, int64_t budget) {
  const std::vector<int> prec = precisions_in;
  checked_precisions(prec);  // validates; the order given is kept (y's slots follow it)
  const size_t C = sizes.size(), m = prec.size();
  if (cost.size() != C)
    throw Error("cluster ILP: " + std::to_string(cost.size()) + " cost rows for " + std::to_string(C) + " clusters");
  if (omega < 1) throw Error("cluster ILP: omega " + std::to_string(omega) + " (expected >= 1)");
  int64_t total = 0;
  for (size_t c = 0; c < C; ++c) {
    if (sizes[c] < 0) throw Error("cluster ILP: cluster " + std::to_string(c) + " has negative size");
    total += sizes[c];
    for (size_t j = 0; j < m; ++j)
      if (!std::isfinite(cost[c][j]))
        throw Error("cluster ILP: cost of cluster " + std::to_string(c) + " at " + std::to_string(prec[j]) +
                    " bits is not finite");
  }

  // Budget in units of omega (every channel weighs omega, so sum p * omega * y <= B is
  // sum p * y <= floor(B / omega) for integer y), then divided by the gcd of the
  // precisions ({2,4}: 2), which tightens an odd remainder away before GLPK sees it.
  if (budget < 0) throw Error("cluster ILP: budget " + std::to_string(budget) + " < 0: infeasible");
  const int64_t units = budget / omega;
  int g = 0;
  for (int p : prec) g = std::gcd(g, p);
  const int64_t cap = units / g;
  const int pmin = *std::min_element(prec.begin(), prec.end());
  if (total * (pmin / g) > cap)
    throw Error("cluster ILP: infeasible: " + std::to_string(total) + " channels of " + std::to_string(omega) +
                " weights need at least " + std::to_string(total * pmin * omega) + " bits at " +
                std::to_string(pmin) + " bits, budget is " + std::to_string(budget));

  ClusterIlpResult res;
  res.y.assign(C, std::array<int64_t, 3>{0, 0, 0});
  if (total == 0) return res;

  // Conditioning: since sum_j y[c][j] = S_c is fixed, subtracting a constant from a cluster's
  // costs shifts the objective by a constant; subtract each cluster's cheapest cost, then
  // scale so the largest remaining cost is 1. Same optimum, better-scaled numbers for GLPK.
  std::vector<std::array<double, 3>> cc(C);
  double top = 0;
  for (size_t c = 0; c < C; ++c) {
    double lo = cost[c][0];
    for (size_t j = 1; j < m; ++j) lo = std::min(lo, cost[c][j]);
    for (size_t j = 0; j < m; ++j) top = std::max(top, cc[c][j] = cost[c][j] - lo);
  }
  const double scale = top > 0 ? 1.0 / top : 1.0;

  GlpkProblem P;
  glp_prob* lp = P.p;
  glp_set_obj_dir(lp, GLP_MIN);
  std::vector<size_t> live;  // clusters with channels
  for (size_t c = 0; c < C; ++c)
    if (sizes[c] > 0) live.push_back(c);
  const int nrows = int(live.size()) + 1, ncols = int(live.size() * m);
  glp_add_rows(lp, nrows);
  glp_add_cols(lp, ncols);
  std::vector<int> ia{0}, ja{0};
  std::vector<double> ar{0};
  for (size_t l = 0; l < live.size(); ++l) {
    const size_t c = live[l];
    const double S = double(sizes[c]);
    glp_set_row_bnds(lp, int(l) + 1, GLP_FX, S, S);
    for (size_t j = 0; j < m; ++j) {
      const int col = int(l * m + j) + 1;
      glp_set_col_kind(lp, col, GLP_IV);
      glp_set_col_bnds(lp, col, GLP_DB, 0.0, S);
      glp_set_obj_coef(lp, col, cc[c][j] * scale);
      ia.push_back(int(l) + 1), ja.push_back(col), ar.push_back(1.0);                     // assignment row
      ia.push_back(nrows), ja.push_back(col), ar.push_back(double(prec[j] / g));           // budget row
    }
  }
  glp_set_row_bnds(lp, nrows, GLP_UP, 0.0, double(cap));
  glp_load_matrix(lp, int(ia.size()) - 1, ia.data(), ja.data(), ar.data());

  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.presolve = GLP_ON;
  parm.msg_lev = GLP_MSG_OFF;
  parm.mip_gap = 0.0;     // prove optimality, no early stop
  parm.tol_obj = 1e-9;    // node pruning tolerance on the (scaled, ~1) objective
  parm.br_tech = GLP_BR_DTH;
  parm.bt_tech = GLP_BT_BLB;
  const int rc = glp_intopt(lp, &parm);
  if (rc != 0) {
    if (rc == GLP_ENOPFS) throw Error(std::string("cluster ILP: infeasible (") + glpk_code_name(rc) + ")");
    throw Error(std::string("cluster ILP: glp_intopt failed: ") + glpk_code_name(rc), ErrorKind::Runtime);
  }
  const int st = glp_mip_status(lp);
  if (st != GLP_OPT)
    throw Error("cluster ILP: GLPK finished without a proven optimum (glp_mip_status " + std::to_string(st) + ")",
                ErrorKind::Runtime);

  int64_t used = 0;
  for (size_t l = 0; l < live.size(); ++l) {
    const size_t c = live[l];
    int64_t s = 0;
    for (size_t j = 0; j < m; ++j) {
      const double v = glp_mip_col_val(lp, int(l * m + j) + 1);
      const int64_t y = std::llround(v);
      QT_CHECK(std::abs(v - double(y)) < 1e-6 && y >= 0 && y <= sizes[c], "cluster ILP: non-integral GLPK value");
      res.y[c][j] = y;
      s += y;
      used += y * (prec[j] / g);
      res.objective += cost[c][j] * double(y);
    }
    QT_CHECK(s == sizes[c], "cluster ILP: counts do not sum to the cluster size");
  }
  QT_CHECK(used <= cap, "cluster ILP: GLPK solution over the budget");
  return res;
}

// ---- intra-cluster assignment ----------------------------------------------------------

std::vector<int> assign_within_cluster(const std::vector<std::array<double, 3>>& mse,
                                       const std::vector<int64_t>& counts) {
  const int m = int(counts.size());
  if (m < 1 || m > 3) throw Error("intra-cluster assignment: " + std::to_string(m) + " precisions (expected 1..3)");
  const int n = int(mse.size());
  int64_t want = 0;
  for (int64_t c : counts) {
    if (c < 0) throw Error("intra-cluster assignment: negative count");
    want += c;
  }
  if (want != int64_t(n))
    throw Error("intra-cluster assignment: counts sum to " + std::to_string(want) + " for " + std::to_string(n) +
                " channels");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j)
      if (!std::isfinite(mse[size_t(i)][size_t(j)]))
        throw Error("intra-cluster assignment: MSE of channel " + std::to_string(i) + " is not finite");

  std::vector<int> where(size_t(n), -1);
  for (int j = 0; j < m; ++j)  // one slot takes everything: nothing to decide
    if (counts[size_t(j)] == int64_t(n)) {
      std::fill(where.begin(), where.end(), j);
      return where;
    }

  struct Entry {
    double key;
    int i;
    uint32_t ver;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.key > b.key || (a.key == b.key && a.i > b.i); }
  };
  using Heap = std::priority_queue<Entry, std::vector<Entry>, Later>;
  std::vector<uint32_t> ver(size_t(n), 0);
  std::vector<int> active;  // slots that take channels (a slot with count 0 never holds one)
  for (int j = 0; j < m; ++j)
    if (counts[size_t(j)] > 0) active.push_back(j);
  Heap enter[3];    // enter[q]: unassigned channels by mse[.][q]
  Heap move[3][3];  // move[p][r]: channels at p by the cost of moving them to r
  for (int q : active) {
    std::vector<Entry> v;
    v.reserve(size_t(n));
    for (int i = 0; i < n; ++i) v.push_back({mse[size_t(i)][size_t(q)], i, 0});
    enter[q] = Heap(Later{}, std::move(v));
  }
  int64_t used[3] = {0, 0, 0};

  auto top_enter = [&](int q) -> const Entry* {
    Heap& h = enter[q];
    while (!h.empty() && where[size_t(h.top().i)] != -1) h.pop();
    return h.empty() ? nullptr : &h.top();
  };
  auto top_move = [&](int p, int r) -> const Entry* {
    Heap& h = move[p][r];
    while (!h.empty() && h.top().ver != ver[size_t(h.top().i)]) h.pop();
    return h.empty() ? nullptr : &h.top();
  };
  auto place = [&](int i, int q) {
    where[size_t(i)] = q;
    const uint32_t v = ++ver[size_t(i)];
    for (int r : active)
      if (r != q) move[q][r].push({mse[size_t(i)][size_t(r)] - mse[size_t(i)][size_t(q)], i, v});
  };

  // Every slot sequence q0, q1, ..., qk of distinct active slots (at most 15 for 3 slots).
  std::vector<std::vector<int>> seqs;
  {
    std::vector<int> cur;
    std::vector<bool> in(3, false);
    auto rec = [&](auto&& self) -> void {
      for (int q : active) {
        if (in[size_t(q)]) continue;
        cur.push_back(q), in[size_t(q)] = true;
        seqs.push_back(cur);
        self(self);
        cur.pop_back(), in[size_t(q)] = false;
      }
    };
    rec(rec);
  }

  for (int step = 0; step < n; ++step) {
    // Shortest augmenting path: an unassigned channel enters seqs[s][0], then along the
    // sequence a channel moves from each slot to the next; the last slot must have room.
    double best = std::numeric_limits<double>::infinity();
    int best_s = -1;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const auto& q = seqs[s];
      if (used[q.back()] >= counts[size_t(q.back())]) continue;
      const Entry* e = top_enter(q[0]);
      if (!e) continue;
      double d = e->key;
      bool ok = true;
      for (size_t t = 0; t + 1 < q.size() && ok; ++t) {
        const Entry* mv = top_move(q[t], q[t + 1]);
        if (!mv) ok = false;
        else d += mv->key;
      }
      if (ok && d < best) best = d, best_s = int(s);
    }
    QT_CHECK(best_s >= 0, "intra-cluster assignment: no augmenting path");
    const auto& q = seqs[size_t(best_s)];
    // Read every channel on the path before changing anything (placing one pushes entries).
    std::vector<int> who{top_enter(q[0])->i};
    for (size_t t = 0; t + 1 < q.size(); ++t) who.push_back(top_move(q[t], q[t + 1])->i);
    place(who[0], q[0]);
    for (size_t t = 1; t < who.size(); ++t) place(who[t], q[t]);
    ++used[q.back()];
  }
  for (int j = 0; j < m; ++j) QT_CHECK(used[j] == counts[size_t(j)], "intra-cluster assignment: counts not met");
  return where;
}

// ---- Algorithm 1 -----------------------------------------------------------------------

Assignment assign_precisions(const std::vector<ChannelCost>& ch, const AssignOptions& o) {
  const std::vector<int> prec = checked_precisions(o.precisions);
  const int pmin = prec.front(), pmax = prec.back();
  if (!(o.avg_bits >= pmin && o.avg_bits <= pmax))
    throw Error("lowra_bits: " + num_str(o.avg_bits) + " is outside [" + std::to_string(pmin) + ", " +
                std::to_string(pmax) + "], the range precisions " + precisions_str(prec) + " can reach");
  if (o.clusters < 1) throw Error("lowra clusters: " + std::to_string(o.clusters) + " (expected >= 1)");
  if (o.kmeans_iters < 0) throw Error("lowra kmeans_iters: " + std::to_string(o.kmeans_iters) + " (expected >= 0)");
  for (size_t i = 0; i < ch.size(); ++i) {
    if (ch[i].params < 1)
      throw Error("lowra: channel " + std::to_string(i) + " has params " + std::to_string(ch[i].params) +
                  " (expected >= 1)");
    for (int s = 0; s < 3; ++s)
      if (!std::isfinite(ch[i].mse[s]) || ch[i].mse[s] < 0)
        throw Error("lowra: channel " + std::to_string(i) + " has MSE " + num_str(ch[i].mse[s]) + " at " +
                    std::to_string(1 << s) + " bits (expected finite and >= 0)");
  }

  Assignment out;
  out.bits.assign(ch.size(), 0);
  std::map<int64_t, std::vector<int>> groups;  // params -> channel indices (ascending params)
  for (size_t i = 0; i < ch.size(); ++i) groups[ch[i].params].push_back(int(i));

  const size_t m = prec.size();
  for (const auto& [omega, idx] : groups) {
    const int64_t nk = int64_t(idx.size());
    QT_CHECK(nk <= std::numeric_limits<int64_t>::max() / omega, "lowra: W_k overflows");
    const int64_t Wk = nk * omega;
    const int64_t Bk = floor_product(o.avg_bits, Wk);
    QT_CHECK(Bk >= pmin * Wk && Bk <= pmax * Wk, "lowra: group budget outside [pmin W, pmax W]");
    out.budget += Bk;

    // Step 3: cluster on the MSE profile.
    std::vector<std::array<double, 3>> feat(idx.size());
    for (size_t t = 0; t < idx.size(); ++t) feat[t] = lowra_feature(ch[size_t(idx[t])], prec);
    const int k = int(std::min<int64_t>(o.clusters, nk));
    const std::vector<int> label = kmeans3(feat, k, o.kmeans_iters, splitmix64(o.seed ^ splitmix64(uint64_t(omega))));

    // Members per cluster, empty clusters dropped.
    std::vector<std::vector<int>> members(static_cast<size_t>(k));
    for (size_t t = 0; t < idx.size(); ++t) members[size_t(label[t])].push_back(idx[t]);
    members.erase(std::remove_if(members.begin(), members.end(), [](const auto& v) { return v.empty(); }),
                  members.end());

    // Step 4: cluster ILP on the mean costs.
    std::vector<int64_t> sizes(members.size());
    std::vector<std::array<double, 3>> cost(members.size(), std::array<double, 3>{0, 0, 0});
    for (size_t c = 0; c < members.size(); ++c) {
      sizes[c] = int64_t(members[c].size());
      for (size_t j = 0; j < m; ++j) {
        const int s = mse_slot(prec[j]);
        double sum = 0;
        for (int i : members[c]) sum += ch[size_t(i)].mse[s];
        cost[c][j] = sum / double(sizes[c]) * double(omega);
      }
    }
    const ClusterIlpResult ilp = solve_cluster_ilp(sizes, cost, prec, omega, Bk);

    // Step 5: exact assignment inside each cluster.
    for (size_t c = 0; c < members.size(); ++c) {
      std::vector<std::array<double, 3>> mse(members[c].size(), std::array<double, 3>{0, 0, 0});
      for (size_t t = 0; t < members[c].size(); ++t)
        for (size_t j = 0; j < m; ++j) mse[t][j] = ch[size_t(members[c][t])].mse[mse_slot(prec[j])];
      const std::vector<int64_t> counts(ilp.y[c].begin(), ilp.y[c].begin() + m);
      const std::vector<int> slot = assign_within_cluster(mse, counts);
      for (size_t t = 0; t < members[c].size(); ++t) out.bits[size_t(members[c][t])] = uint8_t(prec[size_t(slot[t])]);
    }
  }

  // Step 6: totals, in input order.
  int64_t group_used_check = 0;
  for (size_t i = 0; i < ch.size(); ++i) {
    QT_CHECK(out.bits[i] != 0, "lowra: channel left without a precision");
    out.sse += ch[i].mse[mse_slot(out.bits[i])] * double(ch[i].params);
    group_used_check += int64_t(out.bits[i]) * ch[i].params;
  }
  out.bits_used = group_used_check;
  QT_CHECK(out.bits_used <= out.budget, "lowra: bits used exceed the budget");
  return out;
}

}  // namespace qtrain
