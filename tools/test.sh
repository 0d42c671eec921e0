#!/usr/bin/env bash
# Builds pmpl and runs its test suite: the README's test command, and what CI runs.
#   tools/test.sh              CUDA build when nvcc is present (GPU tests skip without a GPU)
#   tools/test.sh --no-cuda    CPU-only build
#   tools/test.sh [--no-cuda] -- CTEST_ARGS...   the same, passing the rest to ctest (e.g. -R Pmpl)
# Build trees: build/ (default) and build-cpu/ (--no-cuda). Set PMPL_JOBS to limit parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."

cuda_flag=()
build_dir=build
if [[ "${1:-}" == "--no-cuda" ]]; then
  cuda_flag=(-DPMPL_CUDA=OFF)
  build_dir=build-cpu
  shift
fi
if [[ "${1:-}" == "--" ]]; then
  shift
elif [[ -n "${1:-}" ]]; then
  echo "tools/test.sh: unknown argument '$1'; usage: tools/test.sh [--no-cuda] [-- CTEST_ARGS...]" >&2
  exit 2
fi

bash tools/install_deps.sh --test
jobs="${PMPL_JOBS:-$(nproc)}"
start=$(date +%s)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flag[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs"
built=$(date +%s)
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 600 "$@"
done_at=$(date +%s)
echo "tools/test.sh: build $((built - start)) s, tests $((done_at - built)) s ($build_dir)"
