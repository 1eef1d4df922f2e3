"""Precision modes for inference: which parts of BianqueNet run under bf16 autocast.

* ``"fp32"``: everything in fp32 (TF32 convolutions on CUDA, as the released code ran).
* ``"bf16"``: the whole network under bf16 autocast (channels_last recommended).
* ``"bf16-head"``: backbone in fp32, the decoder/fusion head (where most of the 757 GFLOPs are) under
  bf16 autocast. With random weights the ResNet-101 backbone's bf16 rounding is what moves most
  label-map pixels; this mode keeps most of the speed-up with closer agreement to fp32.

The final 1x1 classifier conv and the logit upsampling always run in fp32 (see ``BianqueHead``).

``choose_precision`` gates the reduced-precision modes: a mode is used only when its argmax label maps
agree with fp32 on >= 99.5 % of the pixels of two synthetic lumbar phantom slices, checked with the
loaded weights on the actual device when the Segmenter starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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


AGREEMENT_GATE = 0.995
CALIBRATION_SEEDS = (11, 12)


@dataclass(frozen=True)
class PrecisionChoice:
    mode: str
    agreement: dict[str, float]  # candidate mode -> fraction of label pixels equal to fp32's
    reason: str


def cpu_has_bf16_units() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def calibration_batch(input_size: int) -> np.ndarray:
    """Synthetic lumbar phantom slices preprocessed like DICOM slices, (N, 3, S, S) float32."""
    from inference.preprocess import normalise
    from inference.synthetic.phantom import PhantomOptions, generate_phantom

    slices = []
    for seed in CALIBRATION_SEEDS:
        ph = generate_phantom(seed=seed, options=PhantomOptions(rows=input_size, cols=input_size))
        img = ph.image / max(float(np.percentile(ph.image, 99.5)), 1e-6) * 255.0
        slices.append(normalise(np.clip(np.rint(img), 0, 255).astype(np.uint8)))
    return np.stack(slices)


@torch.inference_mode()
def choose_precision(net: BianqueNet, device: torch.device, input_size: int,
                     candidates: Sequence[str]) -> PrecisionChoice:
    """First candidate whose argmax label maps agree with fp32 on >= 99.5 % of pixels of the calibration
    phantoms; "fp32" when none does (or no calibration input can be made)."""
    if not candidates:
        return PrecisionChoice("fp32", {}, "no reduced-precision candidate on this device")
    try:
        x = torch.from_numpy(calibration_batch(input_size)).to(device)
    except Exception as exc:  # noqa: BLE001 - without a calibration input we stay in fp32
        return PrecisionChoice("fp32", {}, f"no calibration input ({exc})")
    # One calibration slice per forward pass: the peak memory stays that of serving one slice (the full
    # network's half-resolution fusion head holds ~340 MB of fp32 activations per 512x512 slice).
    fp32 = PrecisionWrapper(net, "fp32")
    ref = [fp32(x[i:i + 1]).argmax(1) for i in range(x.shape[0])]
    agreement: dict[str, float] = {}
    net_cl = net.to(memory_format=torch.channels_last)
    chosen = "fp32"
    for mode in candidates:
        wrapped = PrecisionWrapper(net_cl, mode)
        same = sum(int((wrapped(x[i:i + 1].contiguous(memory_format=torch.channels_last)).argmax(1) == r).sum())
                   for i, r in enumerate(ref))
        agreement[mode] = same / float(sum(r.numel() for r in ref))
        if agreement[mode] >= AGREEMENT_GATE:
            chosen = mode
            break
    if chosen == "fp32":
        net.to(memory_format=torch.contiguous_format)
    reason = f"{chosen}: label agreement with fp32 {agreement}" if agreement else "fp32"
    return PrecisionChoice(chosen, agreement, reason)
