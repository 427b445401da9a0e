// LowRA channel-wise precision assignment (models/lowra_assign.h): each exact level
// against brute force, the whole pipeline against a brute-force per-channel optimum when
// every channel is its own cluster, the budget at scale, monotonicity, bad input, K-means,
// and the time on a LLaMA-2-7B-sized input.
#include "models/lowra_assign.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace qtrain::testing {
namespace {

double unif(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * (double(rng() >> 11) * 0x1.0p-53);
}
int irand(std::mt19937_64& rng, int lo, int hi) { return lo + int(rng() % uint64_t(hi - lo + 1)); }

// A channel whose error falls with bits the way a real weight row's does: a per-channel
// scale spread over orders of magnitude, times per-precision factors with a little noise
// (strictly decreasing: mse(1) > mse(2) > mse(4)).
ChannelCost realistic_channel(std::mt19937_64& rng, int64_t params) {
  std::normal_distribution<double> nd(0, 1);
  ChannelCost c;
  c.params = params;
  const double s = std::exp(1.0 * nd(rng)) * 1e-4;
  c.mse[2] = s * 0.0095 * std::exp(0.2 * nd(rng));
  c.mse[1] = c.mse[2] * 12.0 * std::exp(0.2 * nd(rng));
  c.mse[0] = c.mse[1] * 3.0 * std::exp(0.2 * nd(rng));
  return c;
}

std::vector<ChannelCost> realistic(size_t n_small, int64_t small, size_t n_large, int64_t large, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ChannelCost> v;
  for (size_t i = 0; i < n_small + n_large; ++i) v.push_back(realistic_channel(rng, i < n_small ? small : large));
  std::shuffle(v.begin(), v.end(), rng);  // groups interleaved in input order
  return v;
}

// The totals an assignment must report for its own bits.
void expect_consistent(const std::vector<ChannelCost>& ch, const Assignment& a) {
  ASSERT_EQ(a.bits.size(), ch.size());
  double sse = 0;
  int64_t used = 0;
  for (size_t i = 0; i < ch.size(); ++i) {
    sse += ch[i].mse[mse_slot(a.bits[i])] * double(ch[i].params);
    used += int64_t(a.bits[i]) * ch[i].params;
  }
  EXPECT_NEAR(a.sse, sse, 1e-12 * std::abs(sse) + 1e-300);
  EXPECT_EQ(a.bits_used, used);
}

int64_t expected_budget(const std::vector<ChannelCost>& ch, double avg) {
  std::map<int64_t, int64_t> W;
  for (const auto& c : ch) W[c.params] += c.params;
  int64_t b = 0;
  for (const auto& [w, tot] : W) b += int64_t(std::floor(avg * double(tot) + 1e-9));
  return b;
}

// ---- (a) cluster ILP == brute force --------------------------------------------------

TEST(LowraAssign, ClusterIlpEqualsBruteForce) {
  std::mt19937_64 rng(11);
  const std::vector<std::vector<int>> precision_sets{{1, 2, 4}, {2, 4}, {1, 4}, {1, 2}, {4, 1, 2}};
  int solved = 0, infeasible = 0;
  for (int inst = 0; inst < 120; ++inst) {
    const std::vector<int> prec = precision_sets[size_t(inst) % precision_sets.size()];
    const size_t m = prec.size();
    const int C = 3;
    std::vector<int64_t> sizes(C);
    std::vector<std::array<double, 3>> cost(C, std::array<double, 3>{0, 0, 0});
    for (int c = 0; c < C; ++c) {
      sizes[size_t(c)] = irand(rng, 2, 4);
      for (size_t j = 0; j < m; ++j)  // arbitrary costs: not even monotone in bits
        cost[size_t(c)][j] = (inst % 2 ? unif(rng, 0, 1) : std::pow(10.0, unif(rng, -6, 0)));
    }
    const int64_t omega = irand(rng, 1, 5);

    // Every y: (bits used in units of omega, objective) for the whole enumeration.
    std::vector<std::pair<int64_t, double>> all;
    std::function<void(int, int64_t, double)> rec_cluster;
    std::vector<int64_t> y(m);
    std::function<void(int, size_t, int64_t, int64_t, double)> rec_split =
        [&](int c, size_t j, int64_t left, int64_t units, double obj) {
          if (j + 1 == m) {
            rec_cluster(c + 1, units + left * prec[j], obj + double(left) * cost[size_t(c)][j]);
            return;
          }
          for (int64_t t = 0; t <= left; ++t)
            rec_split(c, j + 1, left - t, units + t * prec[j], obj + double(t) * cost[size_t(c)][j]);
        };
    rec_cluster = [&](int c, int64_t units, double obj) {
      if (c == C) {
        all.push_back({units, obj});
        return;
      }
      rec_split(c, 0, sizes[size_t(c)], units, obj);
    };
    rec_cluster(0, 0, 0.0);

    int64_t total = 0;
    for (auto s : sizes) total += s;
    const int pmin = *std::min_element(prec.begin(), prec.end()), pmax = *std::max_element(prec.begin(), prec.end());
    for (int64_t budget = (pmin * total - 1) * omega; budget <= pmax * total * omega + omega; ++budget) {
      double best = std::numeric_limits<double>::infinity();
      for (const auto& [u, obj] : all)
        if (u * omega <= budget) best = std::min(best, obj);
      if (!std::isfinite(best)) {
        EXPECT_THROW(solve_cluster_ilp(sizes, cost, prec, omega, budget), Error);
        ++infeasible;
        continue;
      }
      const ClusterIlpResult r = solve_cluster_ilp(sizes, cost, prec, omega, budget);
      ++solved;
      // feasible, objective reported right, and optimal
      int64_t used = 0;
      double obj = 0;
      for (int c = 0; c < C; ++c) {
        int64_t s = 0;
        for (size_t j = 0; j < m; ++j) {
          EXPECT_GE(r.y[size_t(c)][j], 0);
          s += r.y[size_t(c)][j];
          used += r.y[size_t(c)][j] * prec[j] * omega;
          obj += double(r.y[size_t(c)][j]) * cost[size_t(c)][j];
        }
        EXPECT_EQ(s, sizes[size_t(c)]);
      }
      EXPECT_LE(used, budget);
      EXPECT_NEAR(r.objective, obj, 1e-12 * (1 + std::abs(obj)));
      EXPECT_NEAR(r.objective, best, 1e-9 * (1 + std::abs(best)))
          << "instance " << inst << " budget " << budget << " omega " << omega;
    }
  }
  EXPECT_GT(solved, 1000);
  EXPECT_GT(infeasible, 0);
}

// ---- (b) intra-cluster assignment == brute force -------------------------------------

TEST(LowraAssign, IntraClusterEqualsBruteForce) {
  std::mt19937_64 rng(22);
  for (int inst = 0; inst < 400; ++inst) {
    const int n = irand(rng, 1, 7);
    const int m = irand(rng, 1, 3);
    std::vector<std::array<double, 3>> mse(size_t(n), std::array<double, 3>{0, 0, 0});
    for (auto& r : mse)
      for (int j = 0; j < m; ++j)  // a third of the instances draw from 3 values: many ties
        r[size_t(j)] = inst % 3 == 0 ? double(irand(rng, 0, 2)) : unif(rng, -1, 1) * std::pow(10.0, unif(rng, -3, 0));
    std::vector<int64_t> counts(size_t(m), 0);
    for (int i = 0; i < n; ++i) ++counts[size_t(irand(rng, 0, m - 1))];

    double best = std::numeric_limits<double>::infinity();
    std::function<void(int, double, std::vector<int64_t>&)> rec = [&](int i, double obj, std::vector<int64_t>& left) {
      if (i == n) {
        best = std::min(best, obj);
        return;
      }
      for (int j = 0; j < m; ++j)
        if (left[size_t(j)] > 0) {
          --left[size_t(j)];
          rec(i + 1, obj + mse[size_t(i)][size_t(j)], left);
          ++left[size_t(j)];
        }
    };
    std::vector<int64_t> left = counts;
    rec(0, 0.0, left);

    const std::vector<int> slot = assign_within_cluster(mse, counts);
    ASSERT_EQ(slot.size(), size_t(n));
    std::vector<int64_t> got(size_t(m), 0);
    double obj = 0;
    for (int i = 0; i < n; ++i) {
      ASSERT_GE(slot[size_t(i)], 0);
      ASSERT_LT(slot[size_t(i)], m);
      ++got[size_t(slot[size_t(i)])];
      obj += mse[size_t(i)][size_t(slot[size_t(i)])];
    }
    EXPECT_EQ(got, counts) << "instance " << inst;
    EXPECT_NEAR(obj, best, 1e-12) << "instance " << inst << " n " << n << " m " << m;
  }
  // counts that do not add up are bad input
  EXPECT_THROW(assign_within_cluster({{1, 2, 3}, {1, 2, 3}}, {1, 0, 0}), Error);
}

// A larger cluster against a second exact method (the assignment problem via DP would be
// exponential; instead check the optimality condition of a transportation problem: no
// single swap or cyclic 3-exchange lowers the cost, which for <= 3 slots, together with the
// counts, characterises the optimum).
TEST(LowraAssign, IntraClusterLargeHasNoImprovingExchange) {
  std::mt19937_64 rng(23);
  const int n = 300;
  std::vector<std::array<double, 3>> mse(n);
  for (auto& r : mse) {
    r[2] = std::pow(10.0, unif(rng, -4, -2));
    r[1] = r[2] * unif(rng, 5, 20);
    r[0] = r[1] * unif(rng, 2, 4);
  }
  const std::vector<int64_t> counts{70, 150, 80};
  const std::vector<int> s = assign_within_cluster(mse, counts);
  std::vector<std::vector<int>> at(3);
  for (int i = 0; i < n; ++i) at[size_t(s[size_t(i)])].push_back(i);
  for (int j = 0; j < 3; ++j) EXPECT_EQ(int64_t(at[size_t(j)].size()), counts[size_t(j)]);
  // best gain of moving a channel at p to r
  auto best_move = [&](int p, int r) {
    double b = std::numeric_limits<double>::infinity();
    for (int i : at[size_t(p)]) b = std::min(b, mse[size_t(i)][size_t(r)] - mse[size_t(i)][size_t(p)]);
    return b;
  };
  const double tol = 1e-15;
  for (int p = 0; p < 3; ++p)
    for (int r = 0; r < 3; ++r)
      if (p != r) {
        EXPECT_GE(best_move(p, r) + best_move(r, p), -tol);  // swaps
      }
  EXPECT_GE(best_move(0, 1) + best_move(1, 2) + best_move(2, 0), -tol);  // 3-cycles
  EXPECT_GE(best_move(0, 2) + best_move(2, 1) + best_move(1, 0), -tol);
}

// ---- (c) one channel per cluster == brute-force per-channel optimum ------------------

TEST(LowraAssign, SingletonClustersEqualBruteForceOptimum) {
  std::mt19937_64 rng(33);
  struct Case {
    std::vector<int> prec;
    std::vector<double> avgs;
  };
  const std::vector<Case> cases{{{1, 2, 4}, {1.0, 1.3, 1.5, 1.75, 2.0, 2.2, 2.5, 3.0, 3.5, 3.9, 4.0}},
                                {{2, 4}, {2.0, 2.3, 2.5, 3.0, 3.7, 4.0}},
                                {{1, 2}, {1.0, 1.4, 2.0}}};
  int checked = 0;
  for (int inst = 0; inst < 30; ++inst) {
    const int n = 8;
    const int64_t w0 = irand(rng, 2, 6), w1 = w0 + irand(rng, 1, 9);
    std::vector<ChannelCost> ch(n);
    for (int i = 0; i < n; ++i) {
      // half realistic, half arbitrary (not monotone in bits: the solver must not assume it)
      ch[size_t(i)] = realistic_channel(rng, 0);
      if (inst % 2)
        for (double& v : ch[size_t(i)].mse) v = unif(rng, 0, 1);
      ch[size_t(i)].params = (i < 3 || irand(rng, 0, 1)) ? w0 : w1;
    }
    ch[7].params = w1;  // both sizes present
    for (const Case& cs : cases)
      for (double avg : cs.avgs) {
        AssignOptions o;
        o.avg_bits = avg;
        o.precisions = cs.prec;
        o.clusters = n;
        o.seed = uint64_t(inst);
        const Assignment a = assign_precisions(ch, o);
        expect_consistent(ch, a);
        ASSERT_EQ(a.budget, expected_budget(ch, avg));
        EXPECT_LE(a.bits_used, a.budget);

        // brute force over all |P|^n choices with the per-group budgets
        std::map<int64_t, int64_t> Bk;
        {
          std::map<int64_t, int64_t> W;
          for (const auto& c : ch) W[c.params] += c.params;
          for (const auto& [w, tot] : W) Bk[w] = int64_t(std::floor(avg * double(tot) + 1e-9));
        }
        double best = std::numeric_limits<double>::infinity();
        std::vector<int> pick(n, 0);
        const size_t m = cs.prec.size();
        std::function<void(int)> rec = [&](int i) {
          if (i == n) {
            std::map<int64_t, int64_t> used;
            double sse = 0;
            for (int t = 0; t < n; ++t) {
              const int b = cs.prec[size_t(pick[size_t(t)])];
              used[ch[size_t(t)].params] += b * ch[size_t(t)].params;
              sse += ch[size_t(t)].mse[mse_slot(b)] * double(ch[size_t(t)].params);
            }
            for (const auto& [w, u] : used)
              if (u > Bk[w]) return;
            best = std::min(best, sse);
            return;
          }
          for (size_t j = 0; j < m; ++j) pick[size_t(i)] = int(j), rec(i + 1);
        };
        rec(0);
        ASSERT_TRUE(std::isfinite(best));
        EXPECT_NEAR(a.sse, best, 1e-9 * best + 1e-15)
            << "inst " << inst << " avg " << avg << " precisions " << cs.prec.size();
        ++checked;
      }
  }
  EXPECT_EQ(checked, 30 * 20);
}

// ---- (d) the budget is met, and none is left that a channel could use ----------------

void check_budget_met(const std::vector<ChannelCost>& ch, const AssignOptions& o) {
  const Assignment a = assign_precisions(ch, o);
  expect_consistent(ch, a);
  EXPECT_EQ(a.budget, expected_budget(ch, o.avg_bits));
  EXPECT_LE(a.bits_used, a.budget);
  std::map<int64_t, std::pair<int64_t, int64_t>> g;  // params -> (W, used)
  int64_t W = 0, maxp = 0;
  for (size_t i = 0; i < ch.size(); ++i) {
    g[ch[i].params].first += ch[i].params;
    g[ch[i].params].second += int64_t(a.bits[i]) * ch[i].params;
    W += ch[i].params;
    maxp = std::max(maxp, ch[i].params);
    EXPECT_TRUE(std::find(o.precisions.begin(), o.precisions.end(), int(a.bits[i])) != o.precisions.end());
  }
  // the budget is sum_k floor(avg W_k): below avg W by less than a bit per group
  EXPECT_LE(double(a.budget), o.avg_bits * double(W) + 1e-6);
  EXPECT_GT(double(a.budget), o.avg_bits * double(W) - double(g.size()));
  EXPECT_LT(a.budget - a.bits_used, int64_t(g.size()) * 4 * maxp);
  // Per group, tighter: MSE falls strictly with bits, so while a channel is below the top
  // precision, slack of two units of omega would pay for an upgrade (1->2 costs one unit,
  // 2->4 two) and the exact ILP would take it. So slack < 2 omega.
  for (const auto& [w, wu] : g) {
    const int64_t Bk = int64_t(std::floor(o.avg_bits * double(wu.first) + 1e-9));
    EXPECT_LE(wu.second, Bk) << "group " << w;
    EXPECT_LT(Bk - wu.second, 2 * w) << "group " << w << " avg " << o.avg_bits;
  }
}

TEST(LowraAssign, BudgetMetAtScale) {
  const std::vector<ChannelCost> ch = realistic(1900, 64, 1100, 172, 44);
  for (double avg : {1.5, 1.75, 2.0, 2.5, 3.0, 4.0}) {
    SCOPED_TRACE("avg " + std::to_string(avg));
    AssignOptions o;
    o.avg_bits = avg;
    check_budget_met(ch, o);
  }
  for (double avg : {2.0, 3.0, 3.3}) {
    SCOPED_TRACE("{2,4} avg " + std::to_string(avg));
    AssignOptions o;
    o.avg_bits = avg;
    o.precisions = {2, 4};
    check_budget_met(ch, o);
  }
}

// ---- (e) more bits never cost more error ---------------------------------------------

TEST(LowraAssign, MoreBitsNeverRaiseTheError) {
  // Exact (one channel per cluster): a larger budget only enlarges the feasible set, so the
  // optimum cannot rise, at any step.
  {
    std::mt19937_64 rng(55);
    std::vector<ChannelCost> ch;
    for (int i = 0; i < 60; ++i) ch.push_back(realistic_channel(rng, i % 3 ? 8 : 20));
    double prev = std::numeric_limits<double>::infinity();
    for (double avg = 1.0; avg <= 4.0 + 1e-12; avg += 0.05) {
      AssignOptions o;
      o.avg_bits = avg;
      o.clusters = 60;
      const Assignment a = assign_precisions(ch, o);
      EXPECT_LE(a.sse, prev * (1 + 1e-12)) << "avg " << avg;
      prev = a.sse;
    }
  }
  // Clustered (128 clusters on 3000 channels), the paper's setting, at the usual targets.
  const std::vector<ChannelCost> ch = realistic(1900, 64, 1100, 172, 45);
  for (const std::vector<int>& prec : {std::vector<int>{1, 2, 4}, std::vector<int>{2, 4}}) {
    double prev = std::numeric_limits<double>::infinity();
    for (double avg : {1.0, 1.5, 1.75, 1.9, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0}) {
      if (avg < prec.front()) continue;
      AssignOptions o;
      o.avg_bits = avg;
      o.precisions = prec;
      const Assignment a = assign_precisions(ch, o);
      EXPECT_LE(a.sse, prev) << "avg " << avg;
      prev = a.sse;
    }
  }
}

// ---- (f) bad input -------------------------------------------------------------------

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  }
  ADD_FAILURE() << "no qtrain::Error thrown";
  return "";
}

TEST(LowraAssign, BadInputErrors) {
  const std::vector<ChannelCost> ch = realistic(10, 16, 5, 40, 66);
  auto run = [&](double avg, std::vector<int> prec, std::vector<ChannelCost> c) {
    return error_of([&] {
      AssignOptions o;
      o.avg_bits = avg;
      o.precisions = std::move(prec);
      assign_precisions(c, o);
    });
  };
  std::string e = run(4.5, {1, 2, 4}, ch);
  EXPECT_NE(e.find("lowra_bits"), std::string::npos) << e;
  EXPECT_NE(e.find("[1, 4]"), std::string::npos) << e;
  e = run(0.5, {1, 2, 4}, ch);
  EXPECT_NE(e.find("lowra_bits"), std::string::npos) << e;
  e = run(std::nan(""), {1, 2, 4}, ch);
  EXPECT_NE(e.find("lowra_bits"), std::string::npos) << e;
  e = run(1.5, {2, 4}, ch);  // {2,4} cannot go below 2
  EXPECT_NE(e.find("lowra_bits"), std::string::npos) << e;
  EXPECT_NE(e.find("[2, 4]"), std::string::npos) << e;
  e = run(2.5, {1, 2}, ch);
  EXPECT_NE(e.find("[1, 2]"), std::string::npos) << e;

  std::vector<ChannelCost> bad = ch;
  bad[7].mse[1] = std::nan("");
  e = run(2.0, {1, 2, 4}, bad);
  EXPECT_NE(e.find("channel 7"), std::string::npos) << e;
  bad = ch;
  bad[3].mse[2] = -1e-6;
  e = run(2.0, {1, 2, 4}, bad);
  EXPECT_NE(e.find("channel 3"), std::string::npos) << e;
  bad = ch;
  bad[9].mse[0] = std::numeric_limits<double>::infinity();
  e = run(2.0, {1, 2, 4}, bad);
  EXPECT_NE(e.find("channel 9"), std::string::npos) << e;
  bad = ch;
  bad[4].params = 0;
  e = run(2.0, {1, 2, 4}, bad);
  EXPECT_NE(e.find("channel 4"), std::string::npos) << e;

  e = run(2.0, {}, ch);
  EXPECT_NE(e.find("precisions"), std::string::npos) << e;
  e = run(2.0, {2, 3}, ch);
  EXPECT_NE(e.find("precisions"), std::string::npos) << e;
  e = run(2.0, {2, 2, 4}, ch);
  EXPECT_NE(e.find("precisions"), std::string::npos) << e;

  e = error_of([&] {
    AssignOptions o;
    o.clusters = 0;
    assign_precisions(ch, o);
  });
  EXPECT_NE(e.find("clusters"), std::string::npos) << e;

  // no channels: nothing to do, nothing used
  const Assignment a = assign_precisions({}, AssignOptions{});
  EXPECT_TRUE(a.bits.empty());
  EXPECT_EQ(a.bits_used, 0);
  EXPECT_EQ(a.budget, 0);
}

// ---- (g) K-means ---------------------------------------------------------------------

TEST(LowraAssign, KMeansDeterministicAndNearestCentroid) {
  std::mt19937_64 rng(77);
  std::normal_distribution<double> nd(0, 1);
  std::vector<std::array<double, 3>> pts;
  // six well-separated blobs (centres >= 10 apart, sd 0.3) plus 50 copies of one far point
  const std::array<std::array<double, 3>, 6> mus{{{0, 0, 0}, {-10, 0, 0}, {0, -10, 0}, {0, 0, -10}, {-10, -10, 0}, {-10, -10, -10}}};
  for (int b = 0; b < 6; ++b) {
    const std::array<double, 3> mu = mus[size_t(b)];
    for (int i = 0; i < 400; ++i) pts.push_back({mu[0] + 0.3 * nd(rng), mu[1] + 0.3 * nd(rng), mu[2] + 0.3 * nd(rng)});
  }
  for (int i = 0; i < 50; ++i) pts.push_back({-30, -30, -30});

  for (int k : {1, 5, 16, 64}) {
    for (int iters : {0, 3, 25}) {
      const KMeans3Result r = kmeans3_full(pts, k, iters, 1234);
      EXPECT_EQ(r.labels, kmeans3(pts, k, iters, 1234)) << "k " << k;  // same seed, same result
      EXPECT_EQ(kmeans3_full(pts, k, iters, 1234).centroids, r.centroids);
      ASSERT_EQ(r.centroids.size(), size_t(k));
      ASSERT_EQ(r.labels.size(), pts.size());
      EXPECT_LE(r.iters_run, iters);
      for (size_t i = 0; i < pts.size(); ++i) {
        ASSERT_GE(r.labels[i], 0);
        ASSERT_LT(r.labels[i], k);
        auto d2 = [&](const std::array<double, 3>& c) {
          double s = 0;
          for (int d = 0; d < 3; ++d) s += (pts[i][size_t(d)] - c[size_t(d)]) * (pts[i][size_t(d)] - c[size_t(d)]);
          return s;
        };
        const double mine = d2(r.centroids[size_t(r.labels[i])]);
        for (const auto& c : r.centroids) EXPECT_LE(mine, d2(c)) << "point " << i << " k " << k;
      }
      // stopped early = converged: each centroid is then its members' mean
      if (iters > 0 && r.iters_run < iters) {
        std::vector<std::array<double, 3>> sum(size_t(k), {0, 0, 0});
        std::vector<int> cnt(size_t(k), 0);
        for (size_t i = 0; i < pts.size(); ++i) {
          for (int d = 0; d < 3; ++d) sum[size_t(r.labels[i])][size_t(d)] += pts[i][size_t(d)];
          ++cnt[size_t(r.labels[i])];
        }
        for (int c = 0; c < k; ++c)
          if (cnt[size_t(c)]) {
            for (int d = 0; d < 3; ++d)
              EXPECT_NEAR(r.centroids[size_t(c)][size_t(d)], sum[size_t(c)][size_t(d)] / cnt[size_t(c)], 1e-9);
          }
      }
    }
  }
  // k-means++ separates well-separated blobs: with k = 7 no blob is split and none merged
  {
    const std::vector<int> l = kmeans3(pts, 7, 25, 5);
    for (int b = 0; b < 6; ++b)
      for (int i = 1; i < 400; ++i) EXPECT_EQ(l[size_t(b * 400 + i)], l[size_t(b * 400)]);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(l[2400 + size_t(i)], l[2400]);
  }
  // k above the number of points is clamped; all points equal leaves extra centroids empty
  std::vector<std::array<double, 3>> same(5, {1, 2, 3});
  const KMeans3Result r = kmeans3_full(same, 10, 5, 9);
  EXPECT_EQ(r.centroids.size(), 5u);
  for (int l : r.labels) EXPECT_EQ(l, 0);
  EXPECT_THROW(kmeans3(same, 0, 5, 9), Error);
}

// ---- timing: a LLaMA-2-7B-sized input --------------------------------------------------

TEST(LowraAssign, TimingLlama7bSized) {
  // ~138k output channels in two row lengths (4096 and 11008), 128 clusters per group.
  const std::vector<ChannelCost> ch = realistic(100000, 4096, 38000, 11008, 88);
  AssignOptions o;
  o.avg_bits = 2.0;
  const auto t0 = std::chrono::steady_clock::now();
  const Assignment a = assign_precisions(ch, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ timing ] assign_precisions: %zu channels, 2 groups, 128 clusters, avg 2.0: %.3f s "
              "(bits used %lld of budget %lld)\n",
              ch.size(), s, (long long)a.bits_used, (long long)a.budget);
  EXPECT_LE(a.bits_used, a.budget);
  EXPECT_LT(a.budget - a.bits_used, 2 * 11008);
  EXPECT_LT(s, 30.0);  // a guard against a pathological slowdown, not a benchmark
}

}  // namespace
}  // namespace qtrain::testing
