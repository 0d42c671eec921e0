#!/usr/bin/env python3
"""The baseline for `pmpl bench kernels`: the same ops composed in PyTorch on the same GPU,
float32 or bfloat16 (--dtype; the mixture weights stay float32 and the mixture is computed in
bf16, as autocast would), channels_last, forward + backward, median of --repeat after --warmup
(CUDA events):
  pool_mix_NxHxWxC      w0 x + w1 (x * a_w) * a_h + sum_k w_k pool_k(x) over max/avg 3/5/7
                        (stride 1, same padding, count_include_pad=True; a_h [N, C, H, 1], a_w
                        [N, C, 1, W] the strip attention), as the Meta-Pooling search mixes
  depthwise_k3_sS_...   F.conv2d with groups=C (cuDNN's grouped convolution)
Keys match `pmpl bench kernels`' rows (bf16 rows end in _bf16).

usage: python3 tools/bench_kernels_torch.py --batch-size 64 --out torch_kernels.json
then:  build/pmpl bench kernels --batch-size 64 --baseline torch_kernels.json
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def timed(fn, warmup, repeat):
    times = []
    for i in range(warmup + repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def fresh(*tensors):
    """Each timed backward starts the leaves' gradients afresh (as pmpl bench kernels does)."""
    for t in tensors:
        t.grad = None


def pool_mix(x, a_h, a_w, w):
    y = w[0] * x + w[1] * (x * a_w * a_h)
    for i, k in enumerate((3, 5, 7)):
        y = y + w[2 + i] * F.max_pool2d(x, k, 1, k // 2)
    for i, k in enumerate((3, 5, 7)):
        y = y + w[5 + i] * F.avg_pool2d(x, k, 1, k // 2, count_include_pad=True)
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    suffix = "" if a.dtype == "f32" else "_" + a.dtype
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    n = a.batch_size
    results = []

    def nchw(shape):  # NHWC shape -> a channels_last NCHW tensor
        b, h, w, c = shape
        t = torch.randn(b, c, h, w, device=dev, dtype=dtype)
        return t.contiguous(memory_format=torch.channels_last).requires_grad_()

    for shape in [(n, 56, 56, 96), (n, 28, 28, 144), (n, 14, 14, 384), (n, 7, 7, 960)]:
        x = nchw(shape)
        b, h, wd, c = shape
        a_h = torch.rand(b, c, h, 1, device=dev, dtype=dtype).requires_grad_()
        a_w = torch.rand(b, c, 1, wd, device=dev, dtype=dtype).requires_grad_()
        w = torch.softmax(torch.randn(8, device=dev), 0).requires_grad_()
        dy = torch.randn_like(x)

        def mix():
            return pool_mix(x, a_h, a_w, w.to(dtype))
        with torch.no_grad():
            fwd = timed(mix, a.warmup, a.repeat)
        both = timed(lambda: (fresh(x, a_h, a_w, w), torch.autograd.backward(mix(), dy)), a.warmup, a.repeat)
        results.append({"key": "pool_mix_%dx%dx%dx%d" % shape + suffix, "fwd_ms": fwd, "fwd_bwd_ms": both})
    for shape, stride in [((n, 112, 112, 96), 2), ((n, 56, 56, 144), 1), ((n, 28, 28, 192), 1),
                          ((n, 14, 14, 576), 1), ((n, 14, 14, 576), 2), ((n, 7, 7, 960), 1)]:
        x = nchw(shape)
        c = shape[3]
        weight = torch.randn(c, 1, 3, 3, device=dev, dtype=dtype).requires_grad_()
        out = F.conv2d(x, weight, None, stride, 1, 1, c)
        dy = torch.randn_like(out)
        with torch.no_grad():
            fwd = timed(lambda: F.conv2d(x, weight, None, stride, 1, 1, c), a.warmup, a.repeat)
        both = timed(lambda: (fresh(x, weight), torch.autograd.backward(F.conv2d(x, weight, None, stride, 1, 1, c), dy)),
                     a.warmup, a.repeat)
        results.append({"key": "depthwise_k3_s%d_%dx%dx%dx%d" % ((stride,) + shape) + suffix, "fwd_ms": fwd,
                        "fwd_bwd_ms": both})
    for r in results:
        print("%-34s fwd %8.3f ms  fwd+bwd %8.3f ms" % (r["key"], r["fwd_ms"], r["fwd_bwd_ms"]))
    with open(a.out, "w") as f:
        json.dump({"label": "torch-" + torch.__version__.split("+")[0], "device": torch.cuda.get_device_name(),
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
