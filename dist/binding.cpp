#include "dist/binding.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

#ifdef QTRAIN_HAS_HWLOC
#include <hwloc.h>
#ifdef QTRAIN_HAS_CUDA
#include <cuda_runtime_api.h>
#include <hwloc/cudart.h>
#endif
#endif

namespace qtrain {

Share split_evenly(int n, int index, int count) {
  if (n <= 0 || count <= 0) return {0, 0};
  if (n < count) return {index % n, index % n + 1};
  return {int(int64_t(index) * n / count), int(int64_t(index + 1) * n / count)};
}

// Sizes this rank's OpenMP team to its share of cores unless the user chose.
static std::string size_openmp(int cores, const Communicator& comm) {
  if (comm.local_world() <= 1) return "";
  if (std::getenv("OMP_NUM_THREADS")) return ", OMP_NUM_THREADS from the environment";
  int threads = std::max(1, cores);
  omp_set_num_threads(threads);
  return ", " + std::to_string(threads) + " OpenMP threads";
}

#ifdef QTRAIN_HAS_HWLOC

namespace {

struct Topology {
  hwloc_topology_t t = nullptr;
  Topology() {
    hwloc_topology_init(&t);
    hwloc_topology_load(t);
  }
  ~Topology() { hwloc_topology_destroy(t); }
};

struct Bitmap {
  hwloc_bitmap_t b = hwloc_bitmap_alloc();
  ~Bitmap() { hwloc_bitmap_free(b); }
  std::string str() const {
    char* s = nullptr;
    hwloc_bitmap_list_asprintf(&s, b);
    std::string r = s ? s : "?";
    std::free(s);
    return r;
  }
};

// The cpuset near GPU `gpu`, or false when it cannot be known.
bool gpu_cpuset(Topology& topo, int gpu, Bitmap& out) {
#ifdef QTRAIN_HAS_CUDA
  return hwloc_cudart_get_device_cpuset(topo.t, gpu, out.b) == 0 && !hwloc_bitmap_iszero(out.b);
#else
  return false;
#endif
}

}  // namespace

std::string bind_rank(const Communicator& comm, Device device, bool enabled) {
  const std::string who = "rank " + std::to_string(comm.rank()) + "/" + std::to_string(comm.world());
  Topology topo;
  Bitmap domain;  // the cores this rank's group shares
  hwloc_bitmap_copy(domain.b, hwloc_topology_get_topology_cpuset(topo.t));
  int index = comm.local_rank(), members = comm.local_world();
  std::string near;
  if (device == Device::CUDA && gpu_cpuset(topo, comm.local_rank(), domain)) {
    // Ranks whose GPUs sit near the same cores split those cores.
    index = 0;
    members = 0;
    for (int g = 0; g < comm.local_world(); ++g) {
      Bitmap other;
      if (!gpu_cpuset(topo, g, other) || !hwloc_bitmap_isequal(other.b, domain.b)) continue;
      if (g < comm.local_rank()) ++index;
      ++members;
    }
    near = " near GPU " + std::to_string(comm.local_rank());
  }
  int ncores = hwloc_get_nbobjs_inside_cpuset_by_type(topo.t, domain.b, HWLOC_OBJ_CORE);
  Share share = split_evenly(ncores, index, std::max(1, members));
  Bitmap mine;
  for (int c = share.begin; c < share.end; ++c) {
    hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(topo.t, domain.b, HWLOC_OBJ_CORE, unsigned(c));
    if (core) hwloc_bitmap_or(mine.b, mine.b, core->cpuset);
  }
  std::string threads = size_openmp(share.end - share.begin, comm);
  std::string msg;
  bool alone_on_cpu = device == Device::CPU && comm.local_world() == 1;
  if (!enabled) {
    msg = who + ": not bound (--no-bind)" + threads;
  } else if (alone_on_cpu || hwloc_bitmap_iszero(mine.b)) {
    msg = who + ": not bound (the whole host is this rank's)" + threads;
  } else if (hwloc_set_cpubind(topo.t, mine.b, HWLOC_CPUBIND_PROCESS) != 0) {
    msg = who + ": binding to PUs " + mine.str() + " failed, running unbound" + threads;
  } else {
    std::string cores = share.end - share.begin == 1
                            ? "core " + std::to_string(share.begin)
                            : "cores " + std::to_string(share.begin) + "-" + std::to_string(share.end - 1);
    msg = who + ": bound to " + cores + " (PUs " + mine.str() + ")" + near + threads;
  }
  spdlog::info("{}", msg);
  return msg;
}

#else  // no hwloc

std::string bind_rank(const Communicator& comm, Device device, bool enabled) {
  int cores = int(std::thread::hardware_concurrency());
  Share share = split_evenly(cores, comm.local_rank(), comm.local_world());
  std::string msg = "rank " + std::to_string(comm.rank()) + "/" + std::to_string(comm.world()) +
                    ": not bound (built without hwloc)" + size_openmp(share.end - share.begin, comm);
  spdlog::info("{}", msg);
  return msg;
}

#endif

}  // namespace qtrain
