#!/usr/bin/env python3
"""The baseline for `pmpl bench infer`: PyTorch eager inference (eval mode, torch.no_grad,
channels_last) of the same network on this machine's CPU with as many threads as pmpl uses,
median latency per batch size over --repeat runs after --warmup. Models come from
tools/torch_mobilenetv2_mp.py; with --genotype the Meta-Pooling enhancers are fixed as listed,
as `pmpl export` fixes them.

usage: /usr/bin/python3 tools/bench_infer_torch.py --model mobilenetv2 --input-size 224 \\
           [--width 1.0] [--num-classes 1000] [--small-input] [--genotype G.json] \\
           [--batch-sizes 1,8] --out torch_infer.json
then:  build/pmpl bench infer --model mobilenetv2 --input-size 224 ... --baseline torch_infer.json
Results accumulate in --out (one entry per configuration and batch size).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mobilenetv2_mp as mp  # noqa: E402
import torch_models  # noqa: E402
from bench_infer_common import add_timing_args, infer_key  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mp.add_model_args(ap)
    ap.add_argument("--genotype", help="genotype.json (required for mobilenetv2_mp: pmpl exports fixed networks)")
    ap.add_argument("--input-size", type=int, default=224)
    add_timing_args(ap)
    a = ap.parse_args()
    if (a.model == "mobilenetv2_mp") != (a.genotype is not None):
        ap.error("--genotype goes with --model mobilenetv2_mp, and only with it")
    torch.set_num_threads(a.threads or len(os.sched_getaffinity(0)))
    enhancers = None
    if a.genotype:
        with open(a.genotype) as f:
            enhancers = json.load(f)["enhancers"]
    model = torch_models.build(a.model, a.width, a.num_classes, a.small_input,
                               genotype=None if enhancers is None else {e["name"]: e["ops"] for e in enhancers})
    model = model.to(memory_format=torch.channels_last).eval()
    results = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            results = {r["key"]: r for r in json.load(f)["results"]}
    with torch.no_grad():
        for batch in (int(b) for b in a.batch_sizes.split(",")):
            x = torch.randn(batch, 3, a.input_size, a.input_size).contiguous(memory_format=torch.channels_last)
            times = []
            for i in range(a.warmup + a.repeat):
                t0 = time.perf_counter()
                model(x)
                if i >= a.warmup:
                    times.append(time.perf_counter() - t0)
            ms = statistics.median(times) * 1e3
            key = infer_key(a.model, a.width, a.small_input, enhancers, batch, a.input_size, a.num_classes)
            print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: {key}: {ms:.2f} ms, "
                  f"{batch * 1e3 / ms:.1f} img/s")
            results[key] = {"key": key, "ms": ms, "img_per_s": batch * 1e3 / ms}
    with open(a.out, "w") as f:
        json.dump({"label": f"torch-{torch.__version__.split('+')[0]}", "threads": torch.get_num_threads(),
                   "results": list(results.values())}, f, indent=2)


if __name__ == "__main__":
    main()
