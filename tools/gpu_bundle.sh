#!/usr/bin/env bash
# Prepares, on a CPU machine, what tools/gpu_check.sh runs on a GPU machine that has CUDA and
# PyTorch but none of our Debian libraries and no network: a CUDA build without oneDNN, MPI or
# OpenBLAS (plain-loop GEMMs: the CPU there only computes small references for the CUDA tests),
# and the few shared libraries it still needs, in gpu_bundle/
# (ignored by git; the device tool carries it: `carry: ["gpu_bundle"]`). C/C++ runtimes and CUDA's
# own libraries are the GPU machine's (newer there than here, so compatible).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPMPL_CUDA=ON -DPMPL_ONEDNN=OFF -DPMPL_MPI=OFF \
  -DPMPL_REFERENCE_BLAS=ON >/dev/null
cmake --build build-gpu --target pmpl_cli pmpl_tests -j "${PMPL_JOBS:-$(nproc)}"

rm -rf gpu_bundle
mkdir -p gpu_bundle/lib
cp build-gpu/pmpl build-gpu/tests/pmpl_tests gpu_bundle/
strip gpu_bundle/pmpl gpu_bundle/pmpl_tests
for bin in gpu_bundle/pmpl gpu_bundle/pmpl_tests; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libstdc++* | libgcc_s* | ld-linux* | libdl.so* | libpthread* | librt.so* | libcuda* | \
      libcudart* | libcublas* | libnccl* | libcudnn*) ;;
    *) cp -L "$lib" gpu_bundle/lib/ ;;
  esac
done
echo "gpu_bundle/: $(du -sh gpu_bundle | cut -f1) ($(ls gpu_bundle/lib | tr '\n' ' '))"
