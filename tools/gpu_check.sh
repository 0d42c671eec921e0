#!/usr/bin/env bash
# One script for a GPU machine (a bare H100/H200 with CUDA, PyTorch, Nsight Compute and
# compute-sanitizer, none of our Debian libraries, no network). It runs the build that
# tools/gpu_bundle.sh prepared on a CPU machine (gpu_bundle/, carried over), in about 5 minutes,
# most important first (a run cut short by its time limit still leaves the earlier steps' logs):
#   1. the GPU's facts and the bundle's missing libraries, if any;
#   2. the CUDA tests (every CUDA op and whole networks against the CPU reference, optimisers,
#      GPU training against CPU training, resumed GPU run bit-identical) and the kernel-function
#      tests, each in its own process (a CUDA error cannot hide the tests after it);
#   3. training throughput: pmpl bench train --device cuda for mobilenetv2 and mobilenetv2_mp at
#      224, batch 256, in bf16 mixed precision and in f32, each beside tools/bench_torch_gpu.py
#      (PyTorch eager, channels_last) with the same precision (AMP bf16, or f32);
#   4. pmpl bench kernels beside tools/bench_kernels_torch.py (the same ops in PyTorch, cuDNN for
#      the depthwise convolution) on this card;
#   5. compute-sanitizer memcheck on the depthwise, enhancer, batchnorm, conv and optimiser kernels,
#      then racecheck and synccheck on the enhancer's shared-memory kernels;
#   6. a summary table, also written as JSON.
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
# One process per test: a CUDA error such as an illegal address poisons the context, and would
# fail every later test of the same process, hiding which ones really pass. Results in
# tests.txt ("Suite.Test exit-status"), logs in tests/.
run_tests() {
  local filter='Cuda.*:CudaOps.*:CudaTrain.*:PoolMix*:DepthwiseKernels.*:RandomErasing.Gpu*' failed=0
  mkdir -p "$out/tests"
  : > "$out/tests.txt"
  for t in $("$bundle/pmpl_tests" --gtest_list_tests --gtest_filter="$filter" |
             awk '/^[^ ]/ {suite = $1} /^  / {print suite $1}'); do
    timeout 120 "$bundle/pmpl_tests" --gtest_filter="$t" > "$out/tests/$t.log" 2>&1
    local rc=$?
    echo "$t $rc" | tee -a "$out/tests.txt"
    [[ $rc == 0 ]] || failed=1
  done
  return $failed
}
export -f run_tests
export out bundle
step tests 240 bash -c run_tests
train_flags=(--batch-size 256 --input-size 224 --steps 10 --warmup 3)
step torch_train 100 bash -c "set -e; for m in mobilenetv2 mobilenetv2_mp; do for amp in bf16 off; do \
  python3 tools/bench_torch_gpu.py --model \$m ${train_flags[*]} --amp \$amp --out $out/torch_train_\$amp.json; \
  done; done"
step pmpl_train 150 bash -c "set -e; for m in mobilenetv2 mobilenetv2_mp; do for amp in bf16 off; do \
  $bundle/pmpl bench train --device cuda --model \$m ${train_flags[*]} --amp \$amp \
  --baseline $out/torch_train_\$amp.json --json $out/pmpl_train_\${m}_\$amp.json; done; done"
step torch_kernels 90 bash -c "set -e; for d in f32 bf16; do python3 tools/bench_kernels_torch.py --batch-size 64 \
  --dtype \$d --out $out/torch_kernels_\$d.json; done"
step pmpl_kernels 90 bash -c "set -e; for d in f32 bf16; do $bundle/pmpl bench kernels --batch-size 64 --dtype \$d \
  --baseline $out/torch_kernels_\$d.json --json $out/pmpl_kernels_\$d.json; done"
step sanitizer 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$bundle/pmpl_tests" \
  --gtest_filter='Cuda.MetaPoolMix*:Cuda.Depthwise*:CudaOps.BatchNorm*:CudaOps.DenseConv2d:CudaOps.Optimizers*:CudaOps.MaxAndAvgPools'
# The mixture's kernels share tiles between threads: shared-memory races and barrier misuse.
step racecheck 90 bash -c "set -e; for tool in racecheck synccheck; do compute-sanitizer --tool \$tool \
  --error-exitcode 3 $bundle/pmpl_tests --gtest_filter='Cuda.MetaPoolMix*'; done"

echo "== summary"
rm -f "$out/steps.txt"
for name in gpu tests torch_train pmpl_train torch_kernels pmpl_kernels sanitizer racecheck; do
  printf '  %-14s %s\n' "$name" "${status[$name]:-not run}" | tee -a "$out/steps.txt"
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
summary = {"steps": {}}
for line in open(os.path.join(out, "steps.txt")):
    name, _, result = line.strip().partition(" ")
    summary["steps"][name] = result.strip()
for line in open(os.path.join(out, "gpu.log")):
    if line.strip():
        summary.setdefault("gpu", []).append(line.strip())
path = os.path.join(out, "tests.txt")
if os.path.exists(path):
    results = dict(line.split() for line in open(path) if line.strip())
    failed = sorted(name for name, rc in results.items() if rc != "0")
    summary["tests"] = {"tests": len(results), "failed": {name: results[name] for name in failed}}
    for name in failed:
        print("  FAILED", name, "(exit %s: %s)" % (results[name], "timed out" if results[name] == "124" else
                                                   "crashed" if int(results[name]) > 128 else "failures"))
for dtype in ("f32", "bf16"):
    path = os.path.join(out, "pmpl_kernels_%s.json" % dtype)
    if not os.path.exists(path):
        continue
    k = json.load(open(path))
    summary["kernels_" + dtype] = k
    print("  %-34s %11s %9s %8s" % ("kernel", "fwd+bwd ms", "torch ms", "speedup"))
    for r in k["results"]:
        base = r.get("baseline_fwd_bwd_ms")
        print("  %-34s %11.3f %9s %8s" % (r["key"], r["fwd_bwd_ms"], "%.3f" % base if base else "-",
                                          "%.2fx" % (base / r["fwd_bwd_ms"]) if base else "-"))
torch_runs = {}
for amp in ("bf16", "off"):
    path = os.path.join(out, "torch_train_%s.json" % amp)
    if os.path.exists(path):
        torch_runs[amp] = {r["key"]: r["img_per_s"] for r in json.load(open(path))["results"]}
rows = []
for model in ("mobilenetv2", "mobilenetv2_mp"):
    for amp in ("bf16", "off"):
        path = os.path.join(out, "pmpl_train_%s_%s.json" % (model, amp))
        if not os.path.exists(path):
            continue
        r = json.load(open(path))["results"][0]
        base = torch_runs.get(amp, {}).get(r["key"])
        rows.append({"key": r["key"], "amp": amp, "pmpl_img_s": r["img_per_s"], "torch_img_s": base})
if rows:
    summary["train"] = rows
    print("  %-40s %5s %10s %10s %8s" % ("training step", "amp", "pmpl", "torch", "ratio"))
    for row in rows:
        base = row["torch_img_s"]
        print("  %-40s %5s %10.1f %10s %8s" % (row["key"], row["amp"], row["pmpl_img_s"],
                                              "%.1f" % base if base else "-",
                                              "%.2fx" % (row["pmpl_img_s"] / base) if base else "-"))
    speed = {(r["key"].split("_w")[0], r["amp"]): r["pmpl_img_s"] for r in rows}
    for amp in ("bf16", "off"):
        if ("mobilenetv2", amp) in speed and ("mobilenetv2_mp", amp) in speed:
            print("  search step / plain step (pmpl, %s): %.2f" % (
                amp, speed[("mobilenetv2", amp)] / speed[("mobilenetv2_mp", amp)]))
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
PY
