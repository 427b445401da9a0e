// Was this process started by an MPI launcher (mpirun, srun, hydra)? Read
// from the environment only, so a plain `qtrain train` makes no MPI call.
#pragma once
#include <functional>
#include <string>

namespace qtrain {

struct LauncherEnv {
  std::string launcher;  // "" when none: "openmpi", "pmix", "pmi", "slurm", "mvapich"
  int world = 1;         // the launcher's rank count when it says, else 1
};

using EnvLookup = std::function<const char*(const char*)>;
// `env` defaults to std::getenv; tests pass a fake.
LauncherEnv detect_launcher(const EnvLookup& env = nullptr);

}  // namespace qtrain
