#!/usr/bin/env bash
# Installs what pmpl needs to build, test and run its main job on Debian.
# Idempotent: packages already present are not touched, so a second run takes a second.
# Used by both README commands and by .ci/run.
#   tools/install_deps.sh           build and run
#   tools/install_deps.sh --test    also what the test suite uses: Debian's PyTorch + torchvision
#                                   (the outside oracle pmpl is checked against), matplotlib, and
#                                   clang with libFuzzer (the model-file fuzzer)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
  libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
  libopenblas-openmp-dev libdnnl-dev
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy python3-matplotlib clang libclang-rt-14-dev)
elif [[ -n "${1:-}" ]]; then
  echo "usage: tools/install_deps.sh [--test]" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 2; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
