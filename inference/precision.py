"""Precision modes for inference: which parts of BianqueNet run under bf16 autocast.

* ``"fp32"``: everything in fp32 (TF32 convolutions on CUDA, as the released code ran).
* ``"bf16"``: the whole network under bf16 autocast (channels_last recommended).
* ``"bf16-head"``: backbone in fp32, the decoder/fusion head (where most of the 757 GFLOPs are) under
  bf16 autocast. With random weights the ResNet-101 backbone's bf16 rounding is what moves most
  label-map pixels; this mode keeps most of the speed-up with closer agreement to fp32.

The final 1x1 classifier conv and the logit upsampling always run in fp32 (see ``BianqueHead``).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from inference.model import INPUT_SIZE_MULTIPLE, BianqueNet

PRECISION_MODES = ("fp32", "bf16", "bf16-head")


def _autocast(device_type: str, enabled: bool) -> contextlib.AbstractContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


class PrecisionWrapper(nn.Module):
    """Runs a BianqueNet with the given precision mode; returns fp32 logits at input resolution."""

    def __init__(self, net: BianqueNet, mode: str):
        super().__init__()
        if mode not in PRECISION_MODES:
            raise ValueError(f"unknown precision mode {mode!r}; use one of {PRECISION_MODES}")
        self.net = net
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % INPUT_SIZE_MULTIPLE or w % INPUT_SIZE_MULTIPLE:
            raise ValueError(f"BianqueNet input height and width must be multiples of 64, got {h}x{w}")
        dev = x.device.type
        with _autocast(dev, self.mode == "bf16"):
            feats = self.net.backbone(x)
        with _autocast(dev, self.mode in ("bf16", "bf16-head")):
            logits = self.net.classifier(feats)
        return F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
