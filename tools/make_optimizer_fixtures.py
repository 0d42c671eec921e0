#!/usr/bin/env python3
"""Prints the expected values of tests/test_train.cpp's optimiser parity cases.

Three steps of each optimiser on a decayed weight w and an undecayed bias b (timm's and
torchvision's grouping: no decay on batchnorm and biases), in float64, with the learning rate
changing between steps as a schedule changes it. RMSpropTF and Lamb are timm's
(timm/optim/rmsprop_tf.py and lamb.py, loaded from the files so that timm's package imports,
which want torchvision, are not needed):
    pip install --no-deps --target /tmp/timm_pkg timm==0.9.16
    PYTHONPATH=/tmp/timm_pkg /usr/bin/python3 tools/make_optimizer_fixtures.py
AdamW is torch.optim.AdamW.
"""
import importlib.util
import pathlib
import sys

import torch

W0 = [1.0, -2.0, 0.5]
B0 = [0.3, -0.7]
GRADS = [([0.5, -1.0, 2.0], [0.1, 0.2]), ([-0.3, 0.4, 1.0], [-0.5, 0.05]), ([0.2, 0.2, -0.6], [0.3, -0.1])]
LRS = [0.1, 0.05, 0.02]


def load_timm_optimizer(file, name):
    for root in map(pathlib.Path, sys.path):
        path = root / "timm" / "optim" / file
        if path.exists():
            spec = importlib.util.spec_from_file_location(file[:-3], path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return getattr(module, name)
    raise SystemExit(f"timm's {file} is not on the path: see this script's docstring")


def run(make):
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    opt = make([{"params": [w]}, {"params": [b], "weight_decay": 0.0}])
    for (gw, gb), lr in zip(GRADS, LRS):
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = torch.tensor(gw, dtype=torch.float64)
        b.grad = torch.tensor(gb, dtype=torch.float64)
        opt.step()
    return w.detach().tolist(), b.detach().tolist()


def show(name, values):
    w, b = values
    print(f"{name}: w {{{', '.join(repr(x) for x in w)}}}, b {{{', '.join(repr(x) for x in b)}}}")


RMSpropTF = load_timm_optimizer("rmsprop_tf.py", "RMSpropTF")
Lamb = load_timm_optimizer("lamb.py", "Lamb")
print(f"torch {torch.__version__}; learning rates {LRS}")
show("RMSpropTF(momentum=0.9, eps=1e-3, weight_decay=0.01)",
     run(lambda groups: RMSpropTF(groups, lr=LRS[0], alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=0.01)))
show("AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)",
     run(lambda groups: torch.optim.AdamW(groups, lr=LRS[0], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)))
# timm's Lamb keeps the global gradient norm in a scalar of the default dtype (float32), which
# would round this float64 case's clipping factor to float32; pmpl sums in double.
torch.set_default_dtype(torch.float64)
show("Lamb(betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, max_grad_norm=1.0)",
     run(lambda groups: Lamb(groups, lr=LRS[0], betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)))
