"""The PyTorch side of pmpl's models, for parity fixtures and conversion checks: torchvision's
MobileNetV2, its small-input variant, and the Meta-Pooling enhancer written here from pmpl's
spec (DESIGN §4): y = hardswish(BN(sum_i softmax(alpha)_i * op_i(x))) over skip, strip
(coordinate-attention strip pooling), max3/5/7 and avg3/5/7 (count_include_pad=True), inserted
after the depthwise conv + BN + ReLU6 of every block with expansion > 1 as `enhancer`.
"""
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

OPS = ["skip", "strip", "max3", "max5", "max7", "avg3", "avg5", "avg7"]


class StripAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        mid = max(8, channels // 32)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_h = nn.Conv2d(mid, channels, 1)
        self.conv_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        x_h = x.mean(3, keepdim=True)                   # [N, C, H, 1]: means over W
        x_w = x.mean(2, keepdim=True).permute(0, 1, 3, 2)  # [N, C, W, 1]: means over H
        y = F.hardswish(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(y_h))
        a_w = torch.sigmoid(self.conv_w(y_w.permute(0, 1, 3, 2)))
        return x * a_w * a_h


class MetaPooling(nn.Module):
    """Searching (ops=None): every op, weighted by softmax(alpha). Fixed (ops: a list of op names,
    as in a genotype): only those ops, summed, with no alpha; strip parameters only if chosen.
    Removed (ops == ["none"]): no parameters, the input passed through (the backbone's block)."""

    def __init__(self, channels, ops=None):
        super().__init__()
        self.ops = ops
        if ops == ["none"]:
            return
        if ops is None:
            self.alpha = nn.Parameter(torch.randn(len(OPS)) * 1e-3)
        if ops is None or "strip" in ops:
            self.strip = StripAttention(channels)
        self.bn = nn.BatchNorm2d(channels)
        # pmpl's initialisation (layers/meta_pooling.cpp): hardswish starts in its linear part.
        nn.init.constant_(self.bn.weight, 0.1)
        nn.init.constant_(self.bn.bias, 3.5)

    def run(self, name, x):
        if name == "skip":
            return x
        if name == "strip":
            return self.strip(x)
        k = int(name[3])
        pool = F.max_pool2d if name.startswith("max") else F.avg_pool2d
        return pool(x, k, 1, k // 2)

    def forward(self, x):
        if self.ops == ["none"]:
            return x
        if self.ops is not None:
            mixed = sum(self.run(name, x) for name in self.ops)
        else:
            p = F.softmax(self.alpha, 0)
            mixed = sum(p[i] * self.run(name, x) for i, name in enumerate(OPS))
        return F.hardswish(self.bn(mixed))


def _forward_with_enhancer(self, x):
    y = self.conv[1](self.conv[0](x))
    y = self.conv[3](self.conv[2](self.enhancer(y)))
    return x + y if self.use_res_connect else y


def build(width=1.0, num_classes=1000, small_input=False, meta_pooling=False, dropout=0.2, genotype=None):
    """genotype: None (searching enhancers) or {enhancer name: [op names]} for a fixed network."""
    model = torchvision.models.mobilenet_v2(width_mult=width, num_classes=num_classes, dropout=dropout)
    if small_input:
        # Stem and the first stride-2 block at stride 1, as if built with stride 1: a block whose
        # input and output widths match then gets its residual (at width 0.25, 8 -> 8).
        model.features[0][0].stride = (1, 1)
        for block in model.features[1:]:
            dw = block.conv[1][0] if len(block.conv) == 4 else block.conv[0][0]
            if dw.stride == (2, 2):
                dw.stride = (1, 1)
                block.stride = 1
                block.use_res_connect = block.conv[0][0].in_channels == block.conv[-1].num_features
                break
    if meta_pooling:
        for index, block in enumerate(model.features[1:-1], start=1):
            if len(block.conv) == 4:  # expansion > 1
                ops = None if genotype is None else genotype[f"features.{index}.enhancer"]
                block.enhancer = MetaPooling(block.conv[1][0].out_channels, ops)
                block.forward = types.MethodType(_forward_with_enhancer, block)
    return model


def add_model_args(parser):
    """The model flags of `pmpl bench ...`, for the scripts that write their baselines."""
    import torch_models  # noqa: E402 (here: torch_models imports this module)
    parser.add_argument("--model", default="mobilenetv2", choices=torch_models.NAMES)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--small-input", action="store_true")
