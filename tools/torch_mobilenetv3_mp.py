"""The PyTorch side of pmpl's MobileNetV3 models: torchvision's MobileNetV3 Large and Small, their
small-input variant (stem and the first stride-2 block at stride 1, as pmpl's), and Meta-Pooling
enhancers (tools/torch_mobilenetv2_mp.py's MetaPooling) inserted as `enhancer` in every block with
an expansion conv, after the depthwise conv + BN + activation and before the squeeze-and-excitation,
as models/mobilenetv3.h places them.
"""
import types

import torchvision

from torch_mobilenetv2_mp import MetaPooling


def _forward_with_enhancer(self, x):
    y = x
    for i, layer in enumerate(self.block):
        y = layer(y)
        if i == self.depthwise_index:
            y = self.enhancer(y)
    return x + y if self.use_res_connect else y


def _expands(block):
    first = block.block[0][0]
    return first.groups == 1 and first.kernel_size == (1, 1)


def build(large, width=1.0, num_classes=1000, small_input=False, meta_pooling=False, dropout=0.2, genotype=None):
    """genotype: None (searching enhancers) or {enhancer name: [op names]} for a fixed network."""
    make = torchvision.models.mobilenet_v3_large if large else torchvision.models.mobilenet_v3_small
    model = make(width_mult=width, num_classes=num_classes, dropout=dropout)
    if small_input:
        model.features[0][0].stride = (1, 1)
        for block in model.features[1:-1]:
            dw = block.block[1 if _expands(block) else 0][0]
            if dw.stride == (2, 2):
                dw.stride = (1, 1)
                # As if built with stride 1: residual where the block's widths match.
                block.use_res_connect = block.block[0][0].in_channels == block.out_channels
                break
    if meta_pooling:
        for index, block in enumerate(model.features[1:-1], start=1):
            if _expands(block):
                ops = None if genotype is None else genotype[f"features.{index}.enhancer"]
                block.enhancer = MetaPooling(block.block[1][0].out_channels, ops)
                block.depthwise_index = 1
                block.forward = types.MethodType(_forward_with_enhancer, block)
    return model
