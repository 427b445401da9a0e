// Launcher detection from the environment (no MPI calls involved).
#include "dist/launcher_env.h"

#include <map>

#include "tests/test_util.h"

namespace qtrain {

static LauncherEnv detect(const std::map<std::string, std::string>& vars) {
  return detect_launcher([&](const char* k) -> const char* {
    auto it = vars.find(k);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LauncherEnv, NoneWithoutLauncherVariables) {
  EXPECT_EQ(detect({{"HOME", "/root"}}).launcher, "");
  EXPECT_EQ(detect({}).world, 1);
}

TEST(LauncherEnv, OpenMpiPmixPmiMvapich) {
  auto e = detect({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "1"}, {"PMIX_RANK", "1"}});
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.world, 4);
  e = detect({{"PMIX_RANK", "0"}, {"SLURM_STEP_NUM_TASKS", "16"}, {"SLURM_PROCID", "0"}});
  EXPECT_EQ(e.launcher, "pmix");
  EXPECT_EQ(e.world, 16);
  EXPECT_EQ(detect({{"PMI_SIZE", "2"}, {"PMI_RANK", "0"}}).world, 2);
  EXPECT_EQ(detect({{"MV2_COMM_WORLD_SIZE", "3"}}).launcher, "mvapich");
}

TEST(LauncherEnv, SlurmBatchScriptWithoutSrunIsNotALauncher) {
  EXPECT_EQ(detect({{"SLURM_PROCID", "0"}, {"SLURM_JOB_ID", "12"}, {"SLURM_NTASKS", "8"}}).launcher, "");
  auto e = detect({{"SLURM_PROCID", "3"}, {"SLURM_STEP_NUM_TASKS", "8"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.world, 8);
}

}  // namespace qtrain
