#!/usr/bin/env python3
"""The baseline for `pmpl bench train`: the same training step (forward, label-smoothed
cross-entropy, backward, SGD with Nesterov momentum) in PyTorch on this machine's CPU,
channels_last, with as many threads as pmpl uses (every core this process may use), median
step time over --steps after --warmup. Models come from tools/torch_models.py (torchvision's
backbones and their Meta-Pooling variants, by pmpl's model names).

usage: /usr/bin/python3 tools/bench_torch_cpu.py --model mobilenetv2 --batch-size 64 \\
           --input-size 32 [--width 1.0] [--num-classes 1000] [--small-input] --out torch.json
then:  build/pmpl bench train --model mobilenetv2 --batch-size 64 --input-size 32 --baseline torch.json
Results accumulate in --out (one entry per configuration).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mobilenetv2_mp as mp  # noqa: E402
import torch_models  # noqa: E402


def bench_key(a):
    """The key `pmpl bench train` prints (width printed as C++'s {} formats a double)."""
    return (f"{a.model}_w{a.width:g}{'_small' if a.small_input else ''}_b{a.batch_size}_s{a.input_size}"
            f"_k{a.num_classes}")


def time_steps(a, device, amp_dtype=None):
    """Median seconds of a training step (SGD Nesterov, label smoothing 0.1, channels_last) on
    `device`, under autocast to amp_dtype when given, and the last loss."""
    model = torch_models.build(a.model, a.width, a.num_classes, a.small_input)
    model = model.to(device=device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=4e-5)
    x = torch.randn(a.batch_size, 3, a.input_size, a.input_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([(i * 7919) % a.num_classes for i in range(a.batch_size)], device=device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    cuda = torch.device(device).type == "cuda"
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(x), labels, label_smoothing=0.1)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), float(loss)


def write_result(path, key, step, batch_size, extra):
    """Adds one configuration's result to the JSON file at `path` (results accumulate)."""
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = {r["key"]: r for r in json.load(f)["results"]}
    results[key] = {"key": key, "img_per_s": batch_size / step, "step_ms": step * 1e3}
    with open(path, "w") as f:
        json.dump(dict(extra, label=f"torch-{torch.__version__.split('+')[0]}", results=list(results.values())), f,
                  indent=2)


def add_bench_args(ap):
    mp.add_model_args(ap)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", required=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_args(ap)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads or len(os.sched_getaffinity(0)))
    step, _ = time_steps(a, "cpu")
    key = bench_key(a)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: {key}: "
          f"{step * 1e3:.1f} ms/step, {a.batch_size / step:.1f} img/s")
    write_result(a.out, key, step, a.batch_size, {"threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
