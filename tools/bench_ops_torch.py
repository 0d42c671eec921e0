#!/usr/bin/env python3
"""The baseline for `pmpl bench ops`: the same ops, shapes and timing rule (median of forward
and of forward+backward over --repeat runs after --warmup) in PyTorch on this machine's CPU.
Each op is timed in both memory formats (NCHW contiguous and channels_last, which is pmpl's
NHWC) and the faster one is reported, so the ratio is against PyTorch at its best.

usage: /usr/bin/python3 tools/bench_ops_torch.py [--batch-size 32] [--threads N] --out torch.json
then:  build/pmpl bench ops --batch-size 32 --baseline torch.json
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F


def cases(n):
    act = (n, 144, 56, 56)
    out = []
    for k, s in ((3, 1), (3, 2), (5, 1), (7, 1)):
        out.append((f"dwconv_k{k}_s{s}", act, [(144, 1, k, k)],
                    lambda x, w, k=k, s=s: F.conv2d(x, w, stride=s, padding=k // 2, groups=144)))
    for k in (3, 5, 7):
        out.append((f"maxpool_k{k}", act, [], lambda x, k=k: F.max_pool2d(x, k, 1, k // 2)))
        out.append((f"avgpool_k{k}", act, [], lambda x, k=k: F.avg_pool2d(x, k, 1, k // 2)))
    for cin, cout in ((144, 24), (24, 144)):
        out.append((f"pointwise_{cin}to{cout}", (n, cin, 56, 56), [(cout, cin, 1, 1)],
                    lambda x, w: F.conv2d(x, w)))
    out.append(("stem_conv3x3_s2", (n, 3, 224, 224), [(32, 3, 3, 3)],
                lambda x, w: F.conv2d(x, w, stride=2, padding=1)))
    out.append(("batchnorm", act, [(144,), (144,)],
                lambda x, g, b: F.batch_norm(x, torch.zeros(144), torch.ones(144), g, b, True)))

    def strip(x):
        h, w = x.shape[2], x.shape[3]
        return torch.cat([F.adaptive_avg_pool2d(x, (h, 1)),
                          F.adaptive_avg_pool2d(x, (1, w)).permute(0, 1, 3, 2)], dim=2)
    out.append(("strip_pool", act, [], strip))

    # The Meta-Pooling search mixture as PyTorch composes it (the reference's way), the strip
    # branch (x * a_w) * a_h from its attention; pmpl's fused op and its own composition are both
    # timed against it.
    def pool_mix(x, a_h, a_w, alpha):
        w = torch.softmax(alpha, 0)
        branches = [x, x * a_w * a_h]
        branches += [F.max_pool2d(x, k, 1, k // 2) for k in (3, 5, 7)]
        branches += [F.avg_pool2d(x, k, 1, k // 2) for k in (3, 5, 7)]
        return sum(wi * b for wi, b in zip(w, branches))
    for name in ("pool_mix", "pool_mix_separate"):
        out.append((name, act, [(n, 144, 56, 1), (n, 144, 1, 56), (8,)], pool_mix))
    return out


def time_case(name, fn, x_shape, w_shapes, fmt, repeat, warmup):
    # The stem convolution reads the image, which needs no gradient (as in pmpl's bench).
    x = torch.randn(x_shape).contiguous(memory_format=fmt).requires_grad_(not name.startswith("stem"))
    ws = [torch.randn(s).requires_grad_(True) for s in w_shapes]
    fwd, total = [], []
    for i in range(warmup + repeat):
        t0 = time.perf_counter()
        y = fn(x, *ws)
        t1 = time.perf_counter()
        y.backward(torch.randn_like(y) if i == 0 else gy)
        t2 = time.perf_counter()
        if i == 0:
            gy = torch.randn_like(y)
        x.grad = None
        for w in ws:
            w.grad = None
        if i >= warmup:
            fwd.append((t1 - t0) * 1e3)
            total.append((t2 - t0) * 1e3)
    return statistics.median(fwd), statistics.median(total)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: every core this process may use, as pmpl)")
    ap.add_argument("--out", required=True, help="JSON file for `pmpl bench ops --baseline`")
    args = ap.parse_args()
    # Some builds (Debian's 1.13) start with one thread; match pmpl, which uses every core.
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}")
    results = []
    for name, x_shape, w_shapes, fn in cases(args.batch_size):
        best = None
        for label, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            fwd, total = time_case(name, fn, x_shape, w_shapes, fmt, args.repeat, args.warmup)
            if best is None or total < best[2]:
                best = (label, fwd, total)
        label, fwd, total = best
        print(f"{name:<20} {label:<14} fwd {fwd:8.2f} ms  total {total:8.2f} ms")
        results.append({"name": name, "format": label, "fwd_ms": fwd, "total_ms": total})
    with open(args.out, "w") as f:
        json.dump({"label": f"torch-{torch.__version__.split('+')[0]}",
                   "threads": torch.get_num_threads(), "batch": args.batch_size,
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
