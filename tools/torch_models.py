"""pmpl's models by registry name (models/registry.h) on the PyTorch side: torchvision's networks,
their small-input variants and the Meta-Pooling ("_mp") ones, for fixtures and checks."""
import torch_efficientnet_mp
import torch_mobilenetv2_mp
import torch_mobilenetv3_mp
import torch_shufflenetv2_mp

NAMES = ["mobilenetv2", "mobilenetv2_mp", "mobilenetv3_large", "mobilenetv3_large_mp", "mobilenetv3_small",
         "mobilenetv3_small_mp", "efficientnet_b0", "efficientnet_b0_mp", "shufflenetv2_x0_5", "shufflenetv2_x0_5_mp",
         "shufflenetv2_x1_0", "shufflenetv2_x1_0_mp"]


def build(name, width=1.0, num_classes=1000, small_input=False, dropout=0.2, genotype=None):
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(NAMES)}")
    mp = name.endswith("_mp")
    backbone = name[:-3] if mp else name
    if backbone.startswith("shufflenetv2"):
        if width != 1.0:
            raise ValueError(f"{name}: the width is in the name, so it must be 1, got {width}")
        return torch_shufflenetv2_mp.build(backbone == "shufflenetv2_x0_5", num_classes, small_input, mp, dropout,
                                           genotype)
    if backbone == "efficientnet_b0":
        return torch_efficientnet_mp.build(width, num_classes, small_input, mp, dropout, genotype)
    if backbone == "mobilenetv2":
        return torch_mobilenetv2_mp.build(width, num_classes, small_input, mp, dropout, genotype)
    return torch_mobilenetv3_mp.build(backbone == "mobilenetv3_large", width, num_classes, small_input, mp, dropout,
                                      genotype)
