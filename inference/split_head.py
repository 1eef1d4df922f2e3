"""BianqueNet's decoder/fusion head with its ASPP in fp32 and everything else under bf16 autocast.

Same dataflow as :meth:`inference.model.BianqueHead.forward`, sharing its fusion path (``BianqueHead.fuse``;
kept in step by
``tests/inference/test_precision.py``, which checks that with ``aspp_fp32=False`` this function gives the
head's own output bit for bit, in fp32 and under autocast). Measured on the full network with random
weights, the ASPP (three atrous 3x3 convolutions 4096 -> 256 on the exploding, un-normalised layer-4
features) is the part of the head whose bf16 rounding moves the most label pixels: running it in fp32
raises the agreement with fp32 by ~0.1 percentage point for ~60 of the head's ~650 GFLOPs. The ASPP output
is rounded to bf16 before it joins the bf16 fusion path.
"""

from __future__ import annotations

import contextlib

import torch

from inference.model import BianqueHead


def low_precision_autocast(device_type: str, enabled: bool,
                           dtype: torch.dtype = torch.bfloat16) -> contextlib.AbstractContextManager:
    """``dtype`` (bf16 or fp16) autocast on ``device_type`` when ``enabled``; autocast explicitly off (fp32)
    otherwise."""
    return torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled)


def head_forward(head: BianqueHead, f: dict[str, torch.Tensor], bf16: bool, aspp_fp32: bool) -> torch.Tensor:
    """Logits at half input resolution (fp32). ``bf16``: the head under bf16 autocast; ``aspp_fp32``: except
    the ASPP, run in fp32 on the PSP output and rounded to bf16 afterwards."""
    dev = f["out"].device.type
    with low_precision_autocast(dev, bf16):
        pooled = head.psp(f["out"])
    if aspp_fp32 and bf16:
        with low_precision_autocast(dev, False):
            f32 = head.aspp(pooled.float()).to(torch.bfloat16)
    else:
        with low_precision_autocast(dev, bf16):
            f32 = head.aspp(pooled)
    with low_precision_autocast(dev, bf16):
        hidden = head.fuse(f32, f)
    with low_precision_autocast(dev, False):  # final 1x1 conv in fp32, as in BianqueHead.forward
        return head.classifier[-1](hidden.float())
