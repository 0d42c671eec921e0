"""What the PyTorch-side checks share (tools/check_torch_convert.py, tools/check_onnx_export.py):
a fixed network of any backbone, its enhancers with every op kind and realistic batchnorms, its conversion to pmpl
weights, and the error measures they compare logits with."""
import copy
import json
import os
import subprocess
import sys

import torch

import torch_models

# The networks the PyTorch-side checks cover: (pmpl name, config, image size). Every backbone,
# plain or with Meta-Pooling, small-input stems at 24-32 px and full stems at 48-64 px.
CASES = [("mobilenetv2", dict(width=0.5, num_classes=7, small_input=False), 48),
         ("mobilenetv2_mp", dict(width=0.25, num_classes=5, small_input=True), 24),
         ("mobilenetv3_large_mp", dict(width=0.25, num_classes=6, small_input=True), 32),
         ("mobilenetv3_small", dict(width=0.5, num_classes=4, small_input=False), 64),
         ("efficientnet_b0", dict(width=0.25, num_classes=5, small_input=False), 64),
         ("efficientnet_b0_mp", dict(width=0.25, num_classes=6, small_input=True), 32),
         ("shufflenetv2_x0_5_mp", dict(width=1.0, num_classes=5, small_input=True), 32),
         ("shufflenetv2_x1_0", dict(width=1.0, num_classes=3, small_input=False), 64)]

# Every op kind, pairs too, cycled over the enhancers.
FIXED_CHOICES = [["strip"], ["max7"], ["avg3", "max3"], ["skip"], ["avg5"], ["strip", "avg7"], ["max5"]]


def fixed_model(name, width, classes, size, small_input=True, seed=11):
    """pmpl's network `name` (tools/torch_models.py), a `_mp` one fixed to FIXED_CHOICES, its
    batchnorms' affine parameters off their initial values and then their running statistics the
    true averages of a few random batches, in eval mode. In that order every batchnorm normalises
    what reaches it, as in a trained network; statistics gathered first and then shifted by new
    affine parameters leave later layers with near-constant channels that amplify rounding a
    thousandfold. Returns (model, genotype as {enhancer name: ops}, or None)."""
    genotype = None
    if name.endswith("_mp"):
        probe = torch_models.build(name, width, classes, small_input, 0.0)
        names = [n for n, _ in probe.named_modules() if n.endswith(".enhancer")]
        genotype = {n: FIXED_CHOICES[i % len(FIXED_CHOICES)] for i, n in enumerate(names)}
    torch.manual_seed(seed)
    model = torch_models.build(name, width, classes, small_input, 0.0, genotype)
    randomize_batchnorms(model, size)
    return model, genotype


def randomize_batchnorms(model, size):
    """Every batchnorm's affine parameters off their initial values, then its running statistics
    the true averages of a few random batches (fixed_model says why in that order); eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.momentum = None
        model.train()
        for _ in range(3):
            model(torch.randn(32, 3, size, size) * 1.5)
    model.eval()


def save_for_pmpl(model, genotype, stem):
    """Writes stem.safetensors (via tools/torch_convert.py) and, with a genotype, stem.genotype.json;
    returns their paths (the genotype's None without one)."""
    pth, st, geno = (f"{stem}.{ext}" for ext in ("pth", "safetensors", "genotype.json"))
    torch.save(model.state_dict(), pth)
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_convert.py")
    subprocess.run([sys.executable, tool, "to-pmpl", pth, st], check=True)
    if genotype is None:
        return st, None
    with open(geno, "w") as f:
        json.dump({"format": "pmpl-genotype", "version": 1,
                   "enhancers": [{"name": n, "ops": ops} for n, ops in genotype.items()]}, f)
    return st, geno


def centered(logits):
    """Logits less their mean: what log-probabilities determine."""
    return logits - logits.mean(-1, keepdim=True)


def relative(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def rounding_floor(model, x, unit):
    """How far the centered logits move (relative, float64) when every weight and statistic is
    scaled by a random factor in [1 - unit, 1 + unit]: the error any faithful copy stored with
    that epsilon can have. A random network cancels a lot in its logits, so this is far above
    the epsilon itself (about 1e-5 for float32 here) and is the honest yardstick."""
    reference = copy.deepcopy(model).double()
    want = centered(reference(x.double()))
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(3):
        perturbed = copy.deepcopy(reference)
        for v in perturbed.state_dict().values():
            if v.is_floating_point():
                v.mul_(1 + unit * (2 * torch.rand(v.shape, generator=generator, dtype=v.dtype) - 1))
        worst = max(worst, relative(centered(perturbed(x.double())), want))
    return worst
