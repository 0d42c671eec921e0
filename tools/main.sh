#!/usr/bin/env bash
# The README's main command: installs what is missing, builds pmpl, and runs the main job on
# Debian's Fashion-MNIST (converted to the ImageNet folder layout): a short PMPL search with the
# small-input MobileNetV2-MP, training of the architecture it found and of plain MobileNetV2 on the
# same budget, evaluation of both, the chosen op per layer with its probability, and deployment:
# export to a .pmpl file and inference on test images with it, an int8 file (calibrated) and an
# ONNX file, each scored on the validation set (the ONNX one by onnxruntime). About 8 minutes on 2 cores.
#   PMPL_RUN=DIR      where the run goes (default runs/main-<date>)
#   PMPL_QUICK=1      a 1-minute smoke version
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh
onnx_python="${PMPL_PYENV:-$HOME/.cache/pmpl/pyenv}/bin/python"
bash tools/install_deps.sh --onnx ||
  echo "main: warning: no Python environment with onnxruntime (PyPI unreachable?); the ONNX file will not be scored"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${PMPL_JOBS:-$(nproc)}"

data="${PMPL_DATA:-data_cache/fashion-mnist}"
if [[ ! -d "$data/train" ]]; then
  mkdir -p "$(dirname "$data")"
  ./build/pmpl data fashion-mnist "$data"
fi
run="${PMPL_RUN:-runs/main-$(date +%Y%m%d-%H%M%S)}"
search_images=12000 train_images=30000 train_epochs=3
if [[ "${PMPL_QUICK:-0}" == 1 ]]; then search_images=2000 train_images=4000 train_epochs=1; fi
common=(--data "$data" --width 0.25 --small-input --input-size 28 --crop-scale 0.5 --batch-size 64
        --lr 0.05 --workers "$(nproc)" --limit-val 2000)

echo "== PMPL search (MobileNetV2-MP, small input, width 0.25) on $search_images images"
./build/pmpl train "${common[@]}" --model mobilenetv2_mp --epochs 2 --force-fix-epoch 1 \
  --limit-train "$search_images" --output "$run/search"
echo "== training the found architecture on $train_images images"
./build/pmpl train "${common[@]}" --model mobilenetv2_mp --genotype "$run/search/genotype.json" \
  --epochs "$train_epochs" --limit-train "$train_images" --output "$run/train"
echo "== plain MobileNetV2 with the same budget, for comparison"
./build/pmpl train "${common[@]}" --model mobilenetv2 --epochs "$train_epochs" --limit-train "$train_images" \
  --output "$run/plain"
echo "== evaluation on all of $data/val"
mp=$(./build/pmpl eval --data "$data" --weights "$run/train/checkpoint-best.safetensors" --input-size 28)
plain=$(./build/pmpl eval --data "$data" --weights "$run/plain/checkpoint-best.safetensors" --input-size 28)
echo "  MobileNetV2-MP (searched): ${mp#*: }"
echo "  MobileNetV2 (plain):       ${plain#*: }"
top1() { sed -E 's/.*top-1 ([0-9.]+)%.*/\1/' <<<"$1"; }
python3 -c "import sys; print(f'  searched - plain: {float(sys.argv[1]) - float(sys.argv[2]):+.2f} top-1 (one seed: see README, \"Does the search pay?\", for the spread)')" \
  "$(top1 "$mp")" "$(top1 "$plain")"
echo "== the architecture found (genotype: $run/search/genotype.json)"
python3 - "$run/search/log.jsonl" <<'PY'
import json, math, sys
OPS = ["skip", "strip", "max3", "max5", "max7", "avg3", "avg5", "avg7"]
fixes = [json.loads(l) for l in open(sys.argv[1]) if '"event"' in l]
fixes = {f["name"]: f for f in fixes if f.get("event") == "fixed"}
uniform = math.log2(len(OPS))
print(f"  {'enhancer':<22} {'op':<6} {'p':>5}  entropy (bits; {uniform:.0f} = undecided)  fixed by")
for name in sorted(fixes, key=lambda n: int(n.split(".")[1])):
    f = fixes[name]
    h = -sum(p * math.log2(p) for p in f["probs"] if p > 0)
    p = max(f["probs"])
    why = f"{f['why']} at step {f['step']}"
    if f.get("undecided"):  # --skip-undecided: the leader's lead was too small to act on
        why += f" (undecided: {OPS[f['probs'].index(p)]} led, p {p:.2f})"
    # The probability of the op fixed (none, the enhancer removed, is no candidate).
    shown = "    -" if f["ops"] == "none" else f"{f['probs'][OPS.index(f['ops'].split('+')[0])]:5.2f}"
    print(f"  {name:<22} {f['ops']:<6} {shown}  {h:4.2f} (-{uniform - h:.2f})  {why}")
PY
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 tools/plot_run.py "$run/search"
fi
echo "== export (BN folded, enhancers fixed) and inference on one test image per class"
./build/pmpl export --checkpoint "$run/train/checkpoint-best.safetensors" --out "$run/model.pmpl"
./build/pmpl export --checkpoint "$run/train/checkpoint-best.safetensors" --dtype f16 --out "$run/model-f16.pmpl"
ls -l "$run/model.pmpl" "$run/model-f16.pmpl" | awk '{print "  " $NF ": " $5 " bytes"}'
images=()
for class_dir in "$data"/val/*/; do
  files=("$class_dir"*)  # sorted by the shell's glob
  images+=("${files[0]}")
done
./build/pmpl infer "$run/model.pmpl" "${images[@]}" --top 1
echo "== int8 export (calibrated on 512 training images, bias-corrected), scored by pmpl's int8 runtime"
./build/pmpl export --from "$run/model.pmpl" --dtype int8 --calibrate "$data" --out "$run/model-int8.pmpl"
ls -l "$run/model-int8.pmpl" | awk '{print "  " $NF ": " $5 " bytes"}'
echo "  int8: $(./build/pmpl eval --data "$data" --deploy "$run/model-int8.pmpl" | sed 's/^[^:]*: //')"
echo "  f32:  $(./build/pmpl eval --data "$data" --deploy "$run/model.pmpl" | sed 's/^[^:]*: //')"
echo "== ONNX export (opset 17, NCHW input), scored by onnxruntime on all of $data/val"
./build/pmpl export --from "$run/model.pmpl" --out "$run/model.onnx"
ls -l "$run/model.onnx" | awk '{print "  " $NF ": " $5 " bytes"}'
if [[ -x "$onnx_python" ]]; then
  echo "  onnxruntime: $("$onnx_python" tools/eval_onnx.py "$run/model.onnx" "$data/val" | sed 's/^[^:]*: //')"
  echo "  pmpl eval:   ${mp#*: } (the checkpoint it came from)"
fi
echo "== done: $run (deploy with $run/model.pmpl or $run/model.onnx; docs/FORMAT.md describes both)"
