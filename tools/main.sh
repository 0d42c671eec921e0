#!/usr/bin/env bash
# The README's main command: installs what is missing, builds pmpl, and runs the main job.
# Until the trainer lands (issue 5) the main job is the engine's op benchmark; it becomes
# Fashion-MNIST PMPL search -> training -> export -> inference as those issues close.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${PMPL_JOBS:-$(nproc)}"

./build/pmpl bench ops --batch-size "${PMPL_BENCH_BATCH:-8}" --repeat 5
