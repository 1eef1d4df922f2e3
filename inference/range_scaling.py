"""fp16 range scaling: run a network whose deep activations exceed float16's range in fp16 anyway.

float16 keeps 10 mantissa bits (bfloat16: 7), so its label maps stay much closer to fp32's at the same
tensor-core speed, but its range ends at 65504. A ResNet's residual stream is not normalised between blocks:
in the full BianqueNet with random weights it grows from ~15 after layer 2 to 1.3e5 at the end of layer 3
and 3e5 in layer 4 and the PSP (fp32, 512 px calibration phantoms), so plain fp16 gives non-finite logits.

Every layer from a point in layer 3 to the end of the ASPP is a composition of convolutions, BatchNorm,
ReLU, pooling, bilinear resampling and concatenation, which are linear or positively homogeneous except for
the additive shifts (BatchNorm bias and running mean, convolution bias). Multiplying the residual stream by
``s = 2**e`` on entry and every shift of that part by ``s`` therefore multiplies each of its activations by
``s``; the ASPP output is multiplied by ``1/s`` before it joins the (unscaled) fusion path. With a power of two
the scaling is exact in floating point (only the exponent changes), so in fp32 the scaled network gives the
same logits; in fp16 it keeps the part in range. ``plan_range_scaling`` measures the activation peaks once,
in fp32, on calibration slices, and chooses the first layer-3 block whose activations exceed
``FP16_MAX / HEADROOM`` and the smallest exponent that brings the peak of that part under it (headroom for
inputs brighter than the calibration slices; a batch that still overflows is rerun in fp32 by
``inference.precision.PrecisionWrapper``). Networks whose activations already fit (the shipped light
weights) get no scaling and no copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from inference.model import BianqueNet

FP16_MAX = 65504.0
HEADROOM = 16.0  # calibrated peaks are brought under FP16_MAX / HEADROOM
_CONTAINERS = ("", "backbone", "classifier", "backbone.layer3")  # outputs that are dicts or span both parts


@dataclass(frozen=True)
class RangePlan:
    """Where the scaled part starts and by how much it is scaled (``scale = 2**exponent``)."""

    scaled_from: int | None  # first layer-3 block of the scaled part (len(layer3): layer 4); None: no scaling
    start: str  # module name where the scaled part starts ("" without scaling)
    exponent: int  # < 0 when scaling
    peak: float  # largest |activation| of the scaled part on the calibration slices, unscaled (0 without)
    outside_peak: float  # largest |activation| elsewhere (stays unscaled)

    @property
    def scale(self) -> float:
        return 2.0**self.exponent

    @property
    def active(self) -> bool:
        return self.scaled_from is not None

    def describe(self) -> str:
        if not self.active:
            return f"no fp16 range scaling needed (activation peak {self.outside_peak:.3g})"
        return (f"fp16 range scaling from {self.start} to the ASPP by 2^{self.exponent} (activation peak there "
                f"{self.peak:.3g}, elsewhere {self.outside_peak:.3g})")


NO_SCALING = RangePlan(None, "", 0, 0.0, 0.0)  # run a network as it is


def _scaled_prefixes(net: BianqueNet, scaled_from: int) -> tuple[str, ...]:
    blocks = tuple(f"backbone.layer3.{i}" for i in range(scaled_from, len(net.backbone.layer3)))
    return (*blocks, "backbone.layer4", "classifier.psp", "classifier.aspp")


def _inside(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@torch.inference_mode()
def activation_peaks(net: BianqueNet, x: torch.Tensor) -> dict[str, float]:
    """Module name -> largest |output| over the slices of ``x``, each run alone in fp32 (autocast off)."""
    peaks: dict[str, float] = {}

    def hook(name: str):
        def record(_module: nn.Module, _inp: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.numel():
                peaks[name] = max(peaks.get(name, 0.0), float(out.detach().abs().max()))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n not in _CONTAINERS]
    try:
        with torch.autocast(device_type=x.device.type, enabled=False):
            for i in range(x.shape[0]):
                net(x[i:i + 1].float())
    finally:
        for h in handles:
            h.remove()
    return peaks


def plan_range_scaling(net: BianqueNet, x: torch.Tensor, headroom: float = HEADROOM) -> RangePlan:
    """The scaled part and exponent for ``net`` from its fp32 activation peaks on ``x`` (module docstring)."""
    peaks = activation_peaks(net, x)
    limit = FP16_MAX / headroom
    n3 = len(net.backbone.layer3)

    def peak_of(prefixes: tuple[str, ...], inside: bool = True) -> float:
        return max((v for k, v in peaks.items() if _inside(k, prefixes) == inside), default=0.0)

    start = next((i for i in range(n3) if peak_of((f"backbone.layer3.{i}",)) > limit), None)
    if start is None and peak_of(_scaled_prefixes(net, n3)) > limit:
        start = n3  # only layer 4 and the DFE leave the range
    if start is None:
        return RangePlan(None, "", 0, 0.0, peak_of((), inside=False))
    prefixes = _scaled_prefixes(net, start)
    peak = peak_of(prefixes)
    return RangePlan(start, prefixes[0], -math.ceil(math.log2(peak / limit)), peak, peak_of(prefixes, inside=False))


@torch.no_grad()
def range_scaled_copy(net: BianqueNet, plan: RangePlan) -> BianqueNet:
    """A copy of ``net`` whose scaled part has every shift (BatchNorm bias and running mean, convolution and
    linear bias) multiplied by ``plan.scale``; run it with :func:`scaled_logits`. ``net`` itself when the plan
    scales nothing."""
    if not plan.active:
        return net
    out = copy.deepcopy(net)
    prefixes = _scaled_prefixes(out, plan.scaled_from)  # type: ignore[arg-type]
    for name, m in out.named_modules():
        if not _inside(name, prefixes):
            continue
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.running_mean is not None:
                m.running_mean.mul_(plan.scale)
            if m.bias is not None:
                m.bias.mul_(plan.scale)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.mul_(plan.scale)
    return out


def scaled_logits(scaled_net: BianqueNet, plan: RangePlan, x: torch.Tensor) -> torch.Tensor:
    """Logits at half input resolution of the network that ``range_scaled_copy`` made (equal to the original
    network's, up to fp32 rounding); with :data:`NO_SCALING`, any network's own logits."""
    return scaled_net.classifier(scaled_net.backbone(x, plan.scaled_from, plan.scale), dfe_scale=plan.scale)
