#include "dist/launcher_env.h"

#include <cstdlib>

namespace qtrain {

LauncherEnv detect_launcher(const EnvLookup& lookup) {
  auto env = [&](const char* k) -> const char* { return lookup ? lookup(k) : std::getenv(k); };
  auto size_of = [&](const char* k) {
    const char* v = env(k);
    int n = v ? std::atoi(v) : 0;
    return n > 0 ? n : 1;
  };
  LauncherEnv e;
  // Order matters: mpirun under SLURM sets both; the MPI's own variables win.
  if (env("OMPI_COMM_WORLD_SIZE")) {
    e = {"openmpi", size_of("OMPI_COMM_WORLD_SIZE")};
  } else if (env("PMIX_RANK")) {
    e = {"pmix", env("PMIX_SIZE") ? size_of("PMIX_SIZE") : size_of("SLURM_STEP_NUM_TASKS")};
  } else if (env("PMI_SIZE") || env("PMI_RANK")) {
    e = {"pmi", size_of("PMI_SIZE")};
  } else if (env("MV2_COMM_WORLD_SIZE")) {
    e = {"mvapich", size_of("MV2_COMM_WORLD_SIZE")};
  } else if (env("SLURM_PROCID") && env("SLURM_STEP_NUM_TASKS")) {
    // srun sets SLURM_STEP_NUM_TASKS; the batch script itself (no srun) has
    // SLURM_PROCID only, and must stay a plain single-rank run.
    e = {"slurm", size_of("SLURM_STEP_NUM_TASKS")};
  }
  return e;
}

}  // namespace qtrain
