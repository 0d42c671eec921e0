"""The PyTorch side of pmpl's EfficientNet-B0: torchvision's EfficientNet built from its B0
settings with a width multiplier, its small-input variant (stem and the first stride-2 block at
stride 1, as pmpl's), and Meta-Pooling enhancers (tools/torch_mobilenetv2_mp.py's MetaPooling)
inserted as `enhancer` in every MBConv with an expansion conv, after the depthwise conv + BN + SiLU
and before the squeeze-and-excitation, as models/efficientnet.h places them. stochastic_depth is
0 unless asked for (pmpl's --drop-path; torchvision's default is 0.2).
"""
import types

from torchvision.models import efficientnet

from torch_mobilenetv2_mp import MetaPooling


def _forward_with_enhancer(self, x):
    y = x
    for i, layer in enumerate(self.block):
        y = layer(y)
        if i == self.depthwise_index:
            y = self.enhancer(y)
    if self.use_res_connect:
        y = self.stochastic_depth(y) + x
    return y


def _expands(block):
    first = block.block[0][0]
    return first.groups == 1 and first.kernel_size == (1, 1)


def build(width=1.0, num_classes=1000, small_input=False, meta_pooling=False, dropout=0.2, genotype=None,
          stochastic_depth=0.0):
    """genotype: None (searching enhancers) or {enhancer name: [op names]} for a fixed network."""
    setting, last_channel = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=1.0)
    model = efficientnet.EfficientNet(setting, dropout, stochastic_depth_prob=stochastic_depth,
                                      num_classes=num_classes, last_channel=last_channel)
    blocks = [(f"features.{s}.{i}", block) for s in range(1, len(model.features) - 1)
              for i, block in enumerate(model.features[s])]
    if small_input:
        model.features[0][0].stride = (1, 1)
        for _, block in blocks:
            dw = block.block[1 if _expands(block) else 0][0]
            if dw.stride == (2, 2):
                dw.stride = (1, 1)
                # As if built with stride 1: residual where the block's widths match.
                block.use_res_connect = block.block[0][0].in_channels == block.out_channels
                break
    if meta_pooling:
        for name, block in blocks:
            if _expands(block):
                ops = None if genotype is None else genotype[f"{name}.enhancer"]
                block.enhancer = MetaPooling(block.block[1][0].out_channels, ops)
                block.depthwise_index = 1
                block.forward = types.MethodType(_forward_with_enhancer, block)
    return model
