#!/usr/bin/env python3
"""The GPU baseline for `pmpl bench train --device cuda`: the same training step in PyTorch
eager on this machine's GPU, channels_last, with automatic mixed precision (--amp bf16, pmpl's
default where the GPU has it, or fp16 with a GradScaler) or in float32 (--amp off), median step time over --steps after --warmup, the GPU synchronised at
the end of every step. cuDNN's autotuner is on (benchmark mode), as a tuned PyTorch run has it.

usage: python3 tools/bench_torch_gpu.py --model mobilenetv2 --batch-size 256 --input-size 224 \\
           --amp bf16 --out torch_gpu.json
then:  pmpl bench train --device cuda --model mobilenetv2 --batch-size 256 --input-size 224 \\
           --baseline torch_gpu.json
Results accumulate in --out (one entry per configuration; the last --amp run of a key wins).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch_cpu as bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_bench_args(ap)
    ap.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_torch_gpu: PyTorch sees no CUDA GPU here")
    torch.backends.cudnn.benchmark = True
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[a.amp]
    step, loss = bench.time_steps(a, "cuda", dtype)
    key = bench.bench_key(a)
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, amp {a.amp}: {key}: "
          f"{step * 1e3:.1f} ms/step, {a.batch_size / step:.1f} img/s (loss {loss:.4f})")
    bench.write_result(a.out, key, step, a.batch_size, {"device": torch.cuda.get_device_name(), "amp": a.amp})


if __name__ == "__main__":
    main()
