#!/usr/bin/env bash
# The README's main command: installs what is missing, builds pmpl, and runs the main job.
# Until the trainer lands (issue 5) the main job shows what exists: Debian's Fashion-MNIST turned
# into the ImageNet folder layout, checked, streamed through the loader, and the Meta-Pooling
# model that will search on it. It becomes PMPL search -> training -> export -> inference.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${PMPL_JOBS:-$(nproc)}"

data="${PMPL_DATA:-data_cache/fashion-mnist}"
if [[ ! -d "$data/train" ]]; then
  mkdir -p "$(dirname "$data")"
  ./build/pmpl data fashion-mnist "$data"
fi
./build/pmpl data check "$data" | tail -n 3
./build/pmpl bench loader --data "$data" --input-size 32 --batch-size 128 --workers "$(nproc)" --batches 100
./build/pmpl summary --model mobilenetv2_mp --small-input --input-size 32 --num-classes 10 | tail -n 2
./build/pmpl bench train --model mobilenetv2_mp --small-input --input-size 32 --num-classes 10 \
  --batch-size 64 --steps 5
