# Sourced by the scripts that run test_dist under mpirun, with the script's
# $1 (the qtrain binary; test_dist is built beside it). Skips (77) without
# mpirun or test_dist; else sets test_bin and root_flag (mpirun's
# --allow-run-as-root when run as root).
test_bin="$(dirname "$1")/test_dist"
command -v mpirun >/dev/null || { echo "skipped: mpirun not found"; exit 77; }
[ -x "$test_bin" ] || { echo "skipped: $test_bin not built"; exit 77; }
root_flag=(); [ "$(id -u)" = 0 ] && root_flag=(--allow-run-as-root)
