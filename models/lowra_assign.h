// LowRA channel-wise precision assignment (LowRA, §6 "Mixed-Precision Quantization:
// Channelwise Precision Assignment", Algorithm 1, §6.1-6.3).
//
// Problem. Every output channel i (a weight row of params_i weights) is quantized at one
// precision p_i in P ⊆ {1, 2, 4} bits. Its cost is its summed squared error
// mse_i(p_i) * params_i. Choose p to minimise the total SSE subject to a bit budget.
// That is an ILP with one binary per (channel, precision); over the ~10^5 channels of an LLM
// a generic solver is far too slow (the paper: > 10 h for five LLaMA-2-7B layers), so LowRA
// solves it in two exact levels around one approximation (the clustering):
//
//   Step 1-2  Split the channels by params (their row length; LLaMA has two: hidden and
//             intermediate). Group k has n_k channels of omega_k = w^(k) weights,
//             W_k = n_k * omega_k, and gets the budget B_k = floor(avg_bits * W_k) bits.
//             The per-group floor is why the total budget sum_k B_k may sit below
//             avg_bits * W_sum: by less than 1 bit per group.
//   Step 3    K-means (k-means++ seeded by a std::mt19937_64, then Lloyd) inside each group
//             into min(clusters, n_k) clusters, on the 3-D feature
//                 f_i = (log10(mse_i(1) + 1e-30), log10(mse_i(2) + 1e-30), log10(mse_i(4) + 1e-30)),
//             a coordinate set to 0 for a precision not allowed (it cannot matter). Logs,
//             because MSEs spread over orders of magnitude and what makes two channels
//             interchangeable is their error *profile* across precisions, at every scale;
//             the 1e-30 only keeps an exactly-zero MSE (an all-zero row) finite: such rows
//             land far away, in a cluster of their own.
//   Step 4    Cluster-level ILP (§6.2), solved exactly by GLPK branch and bound
//             (glp_intopt, presolve on, mip_gap 0): integer y[c][p] >= 0,
//                 sum_p y[c][p] = S_c,   sum_c sum_p p * omega * y[c][p] <= B_k,
//                 minimise sum_c sum_p cost[c][p] * y[c][p],
//             cost[c][p] = (mean over the cluster's channels of mse(p)) * omega.
//   Step 5    Intra-cluster assignment (§6.3): given the counts y[c][.], give each of the
//             cluster's channels a precision, minimising sum_i mse_i(p_i) with exactly
//             y[c][p] channels at p. That is a transportation problem (channels -> at most
//             three precisions), solved exactly by successive shortest paths (see
//             assign_within_cluster).
//   Step 6    Collect the per-channel bits; report the SSE, the bits used and the budget.
//
// Why it is exact, and where it is not. Both optimisation levels return true optima, not
// roundings of relaxations: the cluster ILP is a branch-and-bound optimum with zero gap
// (GLPK's only slack is its floating-point objective tolerance, ~1e-9 relative), and the
// transportation problem is solved to optimality by successive shortest paths (its LP is
// totally unimodular, so the integral optimum is the LP optimum). In a group all channels
// share omega, so the budget is, in units of omega, floor(avg_bits * n_k) (floor(floor(aW)/w)
// = floor(a n) for an integer w); sums of {1,2,4} over n channels cannot hit every integer
// (e.g. 4n - 1), so bits_used may sit below the budget, but never by a step some channel
// could still take to lower the (cluster-priced) error: the ILP optimum uses any slack an
// upgrade fits in whenever the upgrade helps (with MSE falling in bits the slack is below
// 2 * omega per group). The one approximation is Step 3: channels of a cluster
// are priced at the cluster mean in Step 4. With clusters >= n_k every channel is its own
// cluster and the result is the exact optimum of the full per-channel ILP under the
// per-group budgets (tests/models/lowra_assign_test.cpp checks this against brute force).
//
// Errors: qtrain::Error for bad input (naming the field, or the channel index), QT_CHECK
// for internal invariants.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace qtrain {

struct ChannelCost {
  int64_t params = 0;   // weights in this output channel (its row length)
  double mse[3] = {};   // mean squared quantization error per weight at 1, 2 and 4 bits
};

struct AssignOptions {
  double avg_bits = 2.0;                 // target code bits per weight over all channels, 1..4
  std::vector<int> precisions{1, 2, 4};  // allowed; a subset of {1,2,4}, e.g. {2,4} (the paper uses {2,4} for LLaMA at >= 2 bits)
  int clusters = 128;                    // K-means clusters per parameter-size group (fewer if fewer channels)
  int kmeans_iters = 25;                 // Lloyd iterations after k-means++ (stops early once stable)
  uint64_t seed = 0;
};

struct Assignment {
  std::vector<uint8_t> bits;  // per channel, in input order
  double sse = 0;             // sum over channels of mse[bits] * params
  int64_t bits_used = 0;      // sum of bits * params
  int64_t budget = 0;         // the total budget it had to meet: sum over groups of floor(avg_bits * W_k)
};

// Algorithm 1. Deterministic for a given input and options.seed.
Assignment assign_precisions(const std::vector<ChannelCost>& ch, const AssignOptions& o);

// ---- building blocks, exposed for tests ------------------------------------------------

// The allowed precisions, validated (non-empty, each in {1,2,4}, no repeats) and sorted.
std::vector<int> checked_precisions(const std::vector<int>& precisions);

// Slot of precision p in ChannelCost::mse: 1 -> 0, 2 -> 1, 4 -> 2.
int mse_slot(int bits);

// Step 3's feature for one channel (see the header comment).
std::array<double, 3> lowra_feature(const ChannelCost& c, const std::vector<int>& precisions);

// K-means on 3-D points: k-means++ initialisation from a std::mt19937_64 seeded with `seed`,
// then up to `iters` Lloyd rounds (centroids := means, points := nearest centroid), stopping
// early when no label changes. An empty cluster keeps its centroid. k is clamped to the
// number of points. On return every point carries the label of its nearest centroid (ties
// to the lowest id). Deterministic for a seed.
struct KMeans3Result {
  std::vector<int> labels;                       // cluster id per point, in [0, k)
  std::vector<std::array<double, 3>> centroids;  // k of them (some may own no point)
  int iters_run = 0;                             // Lloyd rounds run
};
KMeans3Result kmeans3_full(const std::vector<std::array<double, 3>>& pts, int k, int iters, uint64_t seed);
// The labels of kmeans3_full.
std::vector<int> kmeans3(const std::vector<std::array<double, 3>>& pts, int k, int iters, uint64_t seed);

// Cluster-level ILP (§6.2), exact (GLPK glp_intopt, presolve on, zero gap; GLPK's terminal
// output silenced). Clusters c = 0..C-1 of sizes[c] channels; cost[c][j] is the per-channel
// cost of cluster c at precision precisions[j] (slots j >= precisions.size() unused). Every
// channel weighs omega weights, so a channel at p bits uses p * omega of `budget` bits.
// Returns y[c][j] = channels of cluster c at precisions[j], and the objective
// sum cost[c][j] * y[c][j]. Error if no assignment fits the budget, or on bad input.
struct ClusterIlpResult {
  std::vector<std::array<int64_t, 3>> y;
  double objective = 0;
};
ClusterIlpResult solve_cluster_ilp(const std::vector<int64_t>& sizes,
                                   const std::vector<std::array<double, 3>>& cost,
                                   const std::vector<int>& precisions, int64_t omega, int64_t budget);

// Intra-cluster assignment (§6.3), exact: mse[i][j] is channel i's error at slot j
// (j < counts.size() <= 3); exactly counts[j] channels go to slot j (sum counts = number of
// channels). Minimises sum_i mse[i][slot_i]; returns slot_i per channel.
//
// Solver: successive shortest paths on the transportation network source -> channel ->
// slot -> sink. A residual path is "an unassigned channel enters slot q0, then a channel of
// q0 moves to q1, ... until a slot with room", so with at most three slots it visits at most
// three slots and the cheapest hop between two slots is simply the cheapest single channel
// move; keeping per-slot heaps of the entry costs and per-(slot, slot) heaps of the move
// costs (lazily invalidated) finds the shortest path by enumerating the <= 15 slot
// sequences. One augmentation per channel: O(n log n) per cluster.
std::vector<int> assign_within_cluster(const std::vector<std::array<double, 3>>& mse,
                                       const std::vector<int64_t>& counts);

}  // namespace qtrain
