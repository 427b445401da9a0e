#include "dist/bootstrap.h"

#include <spdlog/spdlog.h>

#include "dist/backends.h"
#include "dist/launcher_env.h"

namespace qtrain {

std::unique_ptr<Communicator> make_communicator(Device device, int comm_timeout_s) {
  LauncherEnv env = detect_launcher();
  if (env.launcher.empty()) return std::make_unique<SingleCommunicator>();
#ifdef QTRAIN_HAS_MPI
  std::unique_ptr<Communicator> mpi = make_mpi_communicator(comm_timeout_s);
  std::unique_ptr<Communicator> comm;
  if (device == Device::CUDA) {
#ifdef QTRAIN_HAS_NCCL
    comm = make_nccl_communicator(std::move(mpi), comm_timeout_s);
#else
    spdlog::warn("this qtrain was built without NCCL: GPU gradients are all-reduced through host memory over MPI");
    comm = std::move(mpi);
#endif
  } else {
    comm = std::move(mpi);
  }
  if (comm->rank() == 0)
    spdlog::info("distributed: {} ranks ({} on this host) launched by {}, transport {}", comm->world(),
                 comm->local_world(), env.launcher, comm->name());
  return comm;
#else
  if (env.world > 1)
    throw Error("started by " + env.launcher + " with " + std::to_string(env.world) +
                " ranks, but this qtrain was built without MPI (install libopenmpi-dev and rebuild)");
  spdlog::warn("started by {} but built without MPI: running as a single rank", env.launcher);
  return std::make_unique<SingleCommunicator>();
#endif
}

}  // namespace qtrain
