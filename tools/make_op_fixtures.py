#!/usr/bin/env python3
"""Writes tests/fixtures/ops_torch.json: PyTorch's answers (outputs and gradients, in float64)
for the ops whose semantics are easy to get subtly wrong: padding in avg/max pooling, batchnorm
statistics and running-stat updates, label smoothing, the piecewise activations, convolution
layouts, and coordinate-attention strip pooling. pmpl's tests (tests/test_op_torch.cpp) load it.

Tensors are stored in pmpl's layouts: activations NHWC, conv weights [Cout, kh, kw, Cin],
depthwise weights [C, k, k]. Works with Debian's python3-torch (1.13) and current PyTorch.

usage: tools/make_op_fixtures.py [OUT.json]
"""
import json
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(20231)
DT = torch.float64


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t


def pack(t):
    t = t.detach().contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def rand(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=DT) * scale).requires_grad_(True)


def case(fn, inputs, layouts, extra=None):
    """Runs fn on NCHW inputs, backprops a random upstream gradient, records all in NHWC."""
    out = fn(*inputs)
    upstream = torch.randn(out.shape, dtype=DT)
    out.backward(upstream)
    record = {
        "inputs": {name: pack(layout(t)) for (name, layout), t in zip(layouts, inputs)},
        "output": pack(nhwc(out)),
        "upstream": pack(nhwc(upstream)),
        "grads": {name: pack(layout(t.grad)) for (name, layout), t in zip(layouts, inputs)},
    }
    if extra:
        record.update(extra)
    return record


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/ops_torch.json"
    cases = {}
    act = ("x", nhwc)
    for k in (3, 5, 7):
        for s in (1, 2):
            cases[f"avg_pool_k{k}_s{s}"] = case(
                lambda x: F.avg_pool2d(x, k, s, k // 2), [rand(1, 2, 7, 6)], [act],
                {"kernel": k, "stride": s, "padding": k // 2})
            cases[f"max_pool_k{k}_s{s}"] = case(
                lambda x: F.max_pool2d(x, k, s, k // 2), [rand(1, 2, 7, 6)], [act],
                {"kernel": k, "stride": s, "padding": k // 2})

    # Batchnorm in training mode, with the running statistics it leaves behind.
    running_mean = torch.randn(5, dtype=DT)
    running_var = torch.rand(5, dtype=DT) + 0.5
    rm0, rv0 = running_mean.clone(), running_var.clone()
    x = (torch.randn(2, 5, 3, 4, dtype=DT) * 2 + 1).requires_grad_(True)
    cases["batch_norm_train"] = case(
        lambda x, g, b: F.batch_norm(x, running_mean, running_var, g, b, True, 0.1, 1e-5),
        [x, rand(5), rand(5)], [act, ("gamma", lambda t: t), ("beta", lambda t: t)],
        {"running_mean_before": pack(rm0), "running_var_before": pack(rv0)})
    # Packed only now: the call above updated the running statistics in place.
    cases["batch_norm_train"]["running_mean_after"] = pack(running_mean)
    cases["batch_norm_train"]["running_var_after"] = pack(running_var)
    cases["batch_norm_eval"] = case(
        lambda x, g, b: F.batch_norm(x, rm0, rv0, g, b, False, 0.1, 1e-5),
        [rand(2, 5, 3, 4), rand(5), rand(5)], [act, ("gamma", lambda t: t), ("beta", lambda t: t)],
        {"running_mean_before": pack(rm0), "running_var_before": pack(rv0)})

    labels = torch.tensor([3, 0, 6, 2, 6])
    cases["cross_entropy_smooth"] = case(
        lambda z: F.cross_entropy(z, labels, label_smoothing=0.1), [rand(5, 7, scale=2.0)],
        [("logits", lambda t: t)], {"labels": labels.tolist(), "label_smoothing": 0.1})

    for name, fn in [("relu6", F.relu6), ("hardswish", F.hardswish),
                     ("hardsigmoid", F.hardsigmoid), ("sigmoid", torch.sigmoid),
                     ("log_softmax", lambda t: F.log_softmax(t, -1)),
                     ("softmax", lambda t: F.softmax(t, -1))]:
        cases[name] = case(fn, [rand(6, 9, scale=4.0)], [("x", lambda t: t)])

    ohwi = lambda w: w.permute(0, 2, 3, 1).contiguous()
    cases["conv2d_k3_s2"] = case(lambda x, w: F.conv2d(x, w, stride=2, padding=1),
                                 [rand(1, 3, 7, 6), rand(4, 3, 3, 3)], [act, ("weight", ohwi)],
                                 {"stride": 2, "padding": 1})
    cases["depthwise_k5_s2"] = case(lambda x, w: F.conv2d(x, w, stride=2, padding=2, groups=4),
                                    [rand(1, 4, 7, 6), rand(4, 1, 5, 5)],
                                    [act, ("weight", lambda w: w.reshape(4, 5, 5))],
                                    {"stride": 2, "padding": 2})

    # Coordinate attention's pooling: x_h = mean over W, x_w = mean over H, concatenated along
    # the spatial axis -> [N, C, H + W, 1]; in pmpl's layout [N, H + W, C].
    def strip(x):
        n, c, h, w = x.shape
        x_h = F.adaptive_avg_pool2d(x, (h, 1))
        x_w = F.adaptive_avg_pool2d(x, (1, w)).permute(0, 1, 3, 2)
        return torch.cat([x_h, x_w], dim=2)
    cases["strip_pool"] = case(strip, [rand(2, 5, 3, 4)], [act])
    # strip's output is [N, C, H+W, 1]; nhwc() made it [N, H+W, 1, C]: drop the 1.
    for key in ("output", "upstream"):
        shape = cases["strip_pool"][key]["shape"]
        cases["strip_pool"][key]["shape"] = [shape[0], shape[1], shape[3]]

    # Added later: drawn last, so the cases above keep their inputs.
    cases["silu"] = case(F.silu, [rand(6, 9, scale=4.0)], [("x", lambda t: t)])

    with open(out_path, "w") as f:
        json.dump({"torch_version": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {out_path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
