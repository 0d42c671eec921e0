#!/usr/bin/env bash
# Installs what pmpl needs to build, test and run its main job on Debian.
# Idempotent: packages already present are not touched, so a second run takes a second.
# Used by both README commands and by .ci/run.
#   tools/install_deps.sh           build and run
#   tools/install_deps.sh --test    also what the test suite uses: Debian's PyTorch + torchvision
#                                   (the outside oracle pmpl is checked against), matplotlib,
#                                   clang with libFuzzer (the model-file fuzzer), and a Python
#                                   environment with onnx and onnxruntime from PyPI (the ONNX
#                                   export's check; Debian packages neither at these versions)
#   tools/install_deps.sh --onnx    that Python environment only (with Debian's numpy and Pillow):
#                                   the main job scores its ONNX file with onnxruntime
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
  libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
  libopenblas-openmp-dev libdnnl-dev
  libopenmpi-dev openmpi-bin
  libonnx-dev libprotobuf-dev
  dataset-fashion-mnist
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy python3-matplotlib python3-venv clang libclang-rt-14-dev)
elif [[ "${1:-}" == "--onnx" ]]; then
  packages=(python3-venv python3-numpy python3-pil)
elif [[ -n "${1:-}" ]]; then
  echo "usage: tools/install_deps.sh [--test | --onnx]" >&2
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

# The ONNX check's environment: onnx and onnxruntime pinned, on top of Debian's numpy and torch
# (--system-site-packages; numpy pinned to Debian's so pip leaves it alone). tests/CMakeLists.txt
# looks for it here.
if [[ "${1:-}" == "--test" || "${1:-}" == "--onnx" ]]; then
  pyenv="${PMPL_PYENV:-$HOME/.cache/pmpl/pyenv}"
  want="onnx==1.23.1 onnxruntime==1.30.0"
  if ! "$pyenv/bin/python" -c "import onnx, onnxruntime, sys; sys.exit(onnx.__version__ != '1.23.1' or onnxruntime.__version__ != '1.30.0')" 2>/dev/null; then
    echo "install_deps: making $pyenv with $want"
    /usr/bin/python3 -m venv --system-site-packages "$pyenv"
    numpy_version=$(/usr/bin/python3 -c "import numpy; print(numpy.__version__)")
    "$pyenv/bin/pip" install -q --disable-pip-version-check $want "numpy==$numpy_version"
  fi
fi
