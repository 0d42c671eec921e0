#!/usr/bin/env python3
"""Checks `pmpl export --format onnx` with onnx and onnxruntime from PyPI (ctest Python.OnnxExport
runs it with the virtual environment `tools/install_deps.sh --test` makes; exits 77, "skipped",
where onnx, onnxruntime or torch is missing). For every backbone (check_util.CASES, shared with
check_torch_convert.py: MobileNetV2, MobileNetV3 Large and Small, EfficientNet-B0, ShuffleNetV2
x0.5 and x1.0, plain or `_mp`; the `_mp` ones fixed with every op kind, pairs too; small-input
and full stems), each with realistic batchnorms (tools/check_util.py):
  1. onnx.checker.check_model with full_check (shape inference included) passes; the output is
     [batch, classes] with a symbolic batch; the metadata carries the classes and the input;
  2. onnxruntime's logits, at batch 3 and at batch 1, equal PyTorch's float64 logits of the
     network the weights came from, and `pmpl forward --deploy` (pmpl's runtime on the .pmpl file
     exported from the same weights) gives onnxruntime's: each within 10x the error that rounding
     every weight to float32 causes (check_util.rounding_floor), the argmax equal;
  3. `pmpl export --from FILE.pmpl --format onnx` writes the very bytes the export from the weights
     wrote;
  4. --dtype f16 with ONNX is refused (exit 2, one line).

usage: PYTHON tools/check_onnx_export.py PMPL_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    import torchvision  # noqa: F401
except ImportError as e:
    print(f"skipped: {e} (tools/install_deps.sh --test makes the environment with onnx and onnxruntime)")
    raise SystemExit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_util import CASES, centered, fixed_model, relative, rounding_floor, save_for_pmpl  # noqa: E402


def pmpl_run(pmpl, *args, check=True):
    return subprocess.run([pmpl, *args], check=check, capture_output=True, text=True)


def check_case(pmpl, tmp, name, cfg, size):
    failures = 0
    model, genotype = fixed_model(name, cfg["width"], cfg["num_classes"], size, cfg["small_input"])
    st, geno = save_for_pmpl(model, genotype, os.path.join(tmp, name))
    flags = ["--weights", st, "--model", name, "--width", str(cfg["width"]), "--num-classes", str(cfg["num_classes"]),
             "--input-size", str(size)]
    flags += ["--small-input"] if cfg["small_input"] else []
    flags += ["--genotype", geno] if geno else []
    onnx_path, pmpl_path, again = (os.path.join(tmp, f"{name}.{ext}") for ext in ("onnx", "pmpl", "from.onnx"))
    pmpl_run(pmpl, "export", *flags, "--out", onnx_path)
    pmpl_run(pmpl, "export", *flags, "--out", pmpl_path)
    pmpl_run(pmpl, "export", "--from", pmpl_path, "--out", again)

    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto, full_check=True)
    out_dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    meta = {p.key: p.value for p in proto.metadata_props}
    ok = (out_dims == ["batch", cfg["num_classes"]] and json.loads(meta["pmpl.classes"]) == [str(c) for c in range(cfg["num_classes"])]
          and json.loads(meta["pmpl.input"])["size"] == size and proto.opset_import[0].version == 17)
    print(f"{name}: onnx.checker (full) passes; output {out_dims}, opset {proto.opset_import[0].version}, "
          f"{len(proto.graph.node)} nodes, metadata {sorted(meta)}: {'ok' if ok else 'WRONG'}")
    failures += not ok

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    for batch in (3, 1):
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        got = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
        with torch.no_grad():
            want = centered(model.double()(x.double()))
            model.float()
        bound = 10 * rounding_floor(model, x, 2.0**-24)
        err = relative(centered(got), want)
        np.save(os.path.join(tmp, "x.npy"), x.numpy())
        pmpl_run(pmpl, "forward", "--deploy", pmpl_path, "--input", os.path.join(tmp, "x.npy"),
                 "--output", os.path.join(tmp, "y.npy"))
        runtime = torch.from_numpy(np.load(os.path.join(tmp, "y.npy")))
        err_rt = relative(centered(got), centered(runtime))
        same = bool((got.argmax(1) == want.argmax(1)).all() and (runtime.argmax(1) == got.argmax(1)).all())
        print(f"{name} batch {batch}: onnxruntime vs PyTorch float64 relative error {err:.2e}, vs pmpl's runtime "
              f"{err_rt:.2e} (bound {bound:.1e}), argmax {'equal' if same else 'DIFFERS'}")
        failures += not (err <= bound and err_rt <= bound and same)

    with open(onnx_path, "rb") as a, open(again, "rb") as b:
        identical = a.read() == b.read()
    print(f"{name}: export --from the .pmpl file writes {'the same bytes' if identical else 'DIFFERENT bytes'}")
    failures += not identical

    refused = pmpl_run(pmpl, "export", *flags, "--out", os.path.join(tmp, "f16.onnx"), "--dtype", "f16", check=False)
    lines = refused.stderr.strip().splitlines()
    ok = refused.returncode == 2 and len(lines) == 1 and "--dtype f16" in lines[0]
    print(f"{name}: --dtype f16 to ONNX: exit {refused.returncode}, {lines!r}: {'refused' if ok else 'NOT REFUSED'}")
    failures += not ok
    return failures


def main():
    pmpl = sys.argv[1]
    failures = 0
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, size in CASES:
            failures += check_case(pmpl, tmp, name, cfg, size)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
