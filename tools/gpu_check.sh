#!/usr/bin/env bash
# One script for a GPU machine (a bare H100/H200 with CUDA, PyTorch, Nsight Compute and
# compute-sanitizer, none of our Debian libraries, no network). It runs the build that
# tools/gpu_bundle.sh prepared on a CPU machine (gpu_bundle/, carried over), in about 5 minutes:
#   1. the GPU's facts and the bundle's missing libraries, if any;
#   2. the CUDA tests (every CUDA op against the CPU reference) and the kernel-function tests;
#   3. compute-sanitizer memcheck on the depthwise and enhancer kernels;
#   4. pmpl bench kernels beside tools/bench_kernels_torch.py (the same ops in PyTorch, cuDNN for
#      the depthwise convolution) on this card;
#   5. a summary table, also written as JSON.
# usage: tools/gpu_check.sh OUT_DIR      (with the device tool: tools/gpu_check.sh "$OUT")
# Each step has its own time limit; a failing step is reported and the script goes on.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check_out}"
mkdir -p "$out"
bundle=gpu_bundle
if [[ ! -x $bundle/pmpl_tests ]]; then
  echo "gpu_check: $bundle/ is missing: run tools/gpu_bundle.sh on a CPU machine and carry gpu_bundle" >&2
  exit 2
fi
nccl_lib=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(os.path.dirname(nvidia.nccl.__file__), "lib"))' \
  2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/$bundle/lib:/usr/local/cuda/lib64:${nccl_lib}:${LD_LIBRARY_PATH:-}"
export PATH="/usr/local/cuda/bin:$PATH" PYTHONUNBUFFERED=1
declare -A status

step() {  # step NAME SECONDS COMMAND...: runs with a limit, logs to $out/NAME.log, records pass/fail
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  local start=$SECONDS
  timeout "$limit" "$@" > >(tee "$out/$name.log") 2>&1
  local rc=$?
  status[$name]="$([[ $rc == 0 ]] && echo pass || echo "FAIL (exit $rc)") in $((SECONDS - start)) s"
  echo "-- $name: ${status[$name]}"
}

step gpu 30 bash -c "set -e; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; \
  nvcc --version | tail -1; python3 -c 'import torch; print(\"torch\", torch.__version__)'; \
  missing=\$(ldd $bundle/pmpl_tests $bundle/pmpl | grep 'not found' | sort -u); \
  if [[ -n \$missing ]]; then echo \"missing libraries: \$missing\"; exit 1; fi"
step tests 240 "$bundle/pmpl_tests" --gtest_filter='Cuda.*:PoolMix.*:DepthwiseKernels.*' \
  --gtest_output="json:$out/tests.json"
step sanitizer 180 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$bundle/pmpl_tests" --gtest_filter='Cuda.MetaPoolMix*:Cuda.Depthwise*'
step torch_kernels 120 python3 tools/bench_kernels_torch.py --batch-size 64 --out "$out/torch_kernels.json"
step pmpl_kernels 120 "$bundle/pmpl" bench kernels --batch-size 64 --baseline "$out/torch_kernels.json" \
  --json "$out/pmpl_kernels.json"
echo "== training on the GPU: not yet (the trainer's CUDA path is issue 6's next part): skipped"

echo "== summary"
for name in gpu tests sanitizer torch_kernels pmpl_kernels; do printf '  %-14s %s\n' "$name" "${status[$name]}"; done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
summary = {"steps": {}}
for line in open(os.path.join(out, "gpu.log")):
    if line.strip():
        summary.setdefault("gpu", []).append(line.strip())
path = os.path.join(out, "tests.json")
if os.path.exists(path):
    t = json.load(open(path))
    summary["tests"] = {"tests": t.get("tests"), "failures": t.get("failures"), "disabled": t.get("disabled")}
    for suite in t.get("testsuites", []):
        for case in suite.get("testsuite", []):
            if case.get("failures"):
                print("  FAILED", suite["name"] + "." + case["name"])
path = os.path.join(out, "pmpl_kernels.json")
if os.path.exists(path):
    k = json.load(open(path))
    summary["kernels"] = k
    print("  %-34s %11s %9s %8s" % ("kernel", "fwd+bwd ms", "torch ms", "speedup"))
    for r in k["results"]:
        base = r.get("baseline_fwd_bwd_ms")
        print("  %-34s %11.3f %9s %8s" % (r["key"], r["fwd_bwd_ms"], "%.3f" % base if base else "-",
                                          "%.2fx" % (base / r["fwd_bwd_ms"]) if base else "-"))
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
PY
