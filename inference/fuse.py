"""Inference-only graph simplification: fold eval-mode BatchNorm into the preceding convolution.

Removes ~110 BatchNorm ops from the full network (fewer, cheaper kernels on CPU, especially in bf16).
The backbone stem (``backbone.conv1``/``bn1``) is left alone because the raw stem conv output feeds the
ST-SC/conv skips. The folded copy is for inference only; it has a different state dict: save weights from
the original module.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from inference.model import BasicBlock, BianqueNet, Bottleneck


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(conv.weight.device)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: BianqueNet, inplace: bool = False) -> BianqueNet:
    """Eval-mode ``model`` (a copy unless ``inplace``) with BatchNorm folded into convolutions."""
    folded = (model if inplace else copy.deepcopy(model)).eval()
    for module in folded.modules():
        if isinstance(module, (Bottleneck, BasicBlock)):
            pairs = [("conv1", "bn1"), ("conv2", "bn2")] + ([("conv3", "bn3")] if isinstance(module, Bottleneck) else [])
            for c, b in pairs:
                setattr(module, c, _fold(getattr(module, c), getattr(module, b)))
                setattr(module, b, nn.Identity())
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = _fold(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
    return folded
