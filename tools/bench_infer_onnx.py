#!/usr/bin/env python3
"""A baseline for `pmpl bench infer`: onnxruntime (CPU, all graph optimisations, as many intra-op
threads as pmpl uses) running the ONNX file `pmpl export` wrote from the same network, median
latency per batch size over --repeat runs after --warmup. The keys come from the file's metadata,
so they match what `pmpl bench infer --file` prints for the .pmpl it was converted from.

usage: PYTHON tools/bench_infer_onnx.py model.onnx [--batch-sizes 1,8] --out ort_infer.json
then:  build/pmpl bench infer --file model.pmpl --baseline ort_infer.json
(PYTHON: the environment `tools/install_deps.sh --onnx` makes, ~/.cache/pmpl/pyenv/bin/python;
model.onnx from `pmpl export --from model.pmpl --out model.onnx`.) Results accumulate in --out.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_infer_common import add_timing_args, infer_key  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--label", help="the baseline's name in pmpl's table (default: onnxruntime-VERSION)")
    add_timing_args(ap)
    a = ap.parse_args()
    meta = {p.key: p.value for p in onnx.load(a.model).metadata_props}
    if "pmpl.architecture" not in meta:
        ap.error(f"{a.model} has no pmpl metadata: export it with pmpl export --format onnx")
    arch = meta["pmpl.architecture"]
    enhancers = json.loads(meta["pmpl.genotype"])["enhancers"] if "pmpl.genotype" in meta else None
    size, classes = json.loads(meta["pmpl.input"])["size"], len(json.loads(meta["pmpl.classes"]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads or len(os.sched_getaffinity(0))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    results = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            results = {r["key"]: r for r in json.load(f)["results"]}
    rng = np.random.default_rng(3)
    for batch in (int(b) for b in a.batch_sizes.split(",")):
        x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        times = []
        for i in range(a.warmup + a.repeat):
            t0 = time.perf_counter()
            session.run(["logits"], {"images": x})
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        key = infer_key(arch, float(meta["pmpl.width"]), json.loads(meta["pmpl.small_input"]), enhancers, batch,
                        size, classes)
        print(f"onnxruntime {ort.__version__}, {options.intra_op_num_threads} threads: {key}: {ms:.2f} ms, "
              f"{batch * 1e3 / ms:.1f} img/s")
        results[key] = {"key": key, "ms": ms, "img_per_s": batch * 1e3 / ms}
    with open(a.out, "w") as f:
        json.dump({"label": a.label or f"onnxruntime-{ort.__version__}", "threads": options.intra_op_num_threads,
                   "results": list(results.values())}, f, indent=2)


if __name__ == "__main__":
    main()
