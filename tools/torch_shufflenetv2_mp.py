"""The PyTorch side of pmpl's ShuffleNetV2 (x0.5, x1.0): torchvision's, its small-input variant
(conv1 and the max pool at stride 1, as pmpl's), dropout before fc when asked for (pmpl's
--dropout; torchvision's has none), and Meta-Pooling enhancers (tools/torch_mobilenetv2_mp.py's
MetaPooling) inserted as `enhancer` in every unit's branch2 after its depthwise conv + BN, as
models/shufflenetv2.h places them.
"""
import types

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.shufflenetv2 import channel_shuffle

from torch_mobilenetv2_mp import MetaPooling


def _branch2_with_enhancer(self, x):
    for i, layer in enumerate(self.branch2):
        x = layer(x)
        if i == 4:  # after the depthwise conv (3) and its batchnorm (4)
            x = self.enhancer(x)
    return x


def _unit_forward(self, x):
    if self.stride == 1:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.run_branch2(x2)), dim=1)
    else:
        out = torch.cat((self.branch1(x), self.run_branch2(x)), dim=1)
    return channel_shuffle(out, 2)


def _model_forward(self, x):
    x = self.maxpool(self.conv1(x))
    x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
    x = F.dropout(x.mean([2, 3]), self.dropout_p, self.training)
    return self.fc(x)


def build(half, num_classes=1000, small_input=False, meta_pooling=False, dropout=0.0, genotype=None):
    """genotype: None (searching enhancers) or {enhancer name: [op names]} for a fixed network."""
    make = torchvision.models.shufflenet_v2_x0_5 if half else torchvision.models.shufflenet_v2_x1_0
    model = make(num_classes=num_classes)
    model.dropout_p = dropout
    model.forward = types.MethodType(_model_forward, model)
    if small_input:
        model.conv1[0].stride = (1, 1)
        model.maxpool.stride = 1
    if meta_pooling:
        for s in (2, 3, 4):
            for i, unit in enumerate(getattr(model, f"stage{s}")):
                ops = None if genotype is None else genotype[f"stage{s}.{i}.enhancer"]
                unit.enhancer = MetaPooling(unit.branch2[3].out_channels, ops)
                unit.run_branch2 = types.MethodType(_branch2_with_enhancer, unit)
                unit.forward = types.MethodType(_unit_forward, unit)
    return model
