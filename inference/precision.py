"""Precision modes for inference: which parts of BianqueNet run under bf16 autocast.

* ``"fp32"``: everything in fp32 (TF32 convolutions on CUDA, as the released code ran).
* ``"bf16"``: the whole network under bf16 autocast (channels_last recommended).
* ``"bf16-head"``: backbone in fp32, the decoder/fusion head (where most of the 757 GFLOPs are) under
  bf16 autocast. With random weights the ResNet-101 backbone's bf16 rounding is what moves most
  label-map pixels; this mode keeps most of the speed-up with closer agreement to fp32.
* ``"bf16-fusion"``: ``bf16-head`` with the ASPP in fp32 (:mod:`inference.split_head`): bf16 only in
  the PSP, skips, Swin skips, FPN convolutions and the 1288-channel fusion conv. The ASPP is the head part
  whose bf16 rounding moves the most labels (random weights, 512 px: agreement on the two calibration
  phantoms 99.51 % -> 99.63 %), for ~60 of the head's ~650 GFLOPs.
* ``"fp16"`` / ``"fp16-head"``: as ``"bf16"`` / ``"bf16-head"`` with float16 autocast. fp16 keeps 10 mantissa
  bits against bf16's 7, so its label maps stay much closer to fp32 at the same tensor-core speed, but its
  range ends at 65504: a forward pass whose logits are not finite is rerun in fp32 (``PrecisionWrapper``),
  and the start-up gate measures agreement as for every mode. Meant for CUDA; CPUs have no fast fp16
  convolutions, so ``auto`` never picks it there.
* ``"fp16-scaled"``: ``"fp16"`` with range scaling (:mod:`inference.range_scaling`): when the fp32 activations
  of the calibration phantoms leave fp16's range somewhere in layer 3, layer 4 or the PSP/ASPP (the full network
  with random weights reaches 6e5 there), that part runs on activations scaled by a power of two (its shifts
  scaled with them; exact in floating point), so fp16 stays finite with its 10-bit mantissa. Emulated on CPU
  (``bench/fp16_emulation.py``: fp16 rounding of every convolution's inputs, weights and outputs), the full
  network with random weights agrees with fp32 on 99.91 / 99.88 % of the two calibration phantoms' pixels,
  against 99.14 / 98.99 % for whole-network bf16 emulated the same way. A network that stays in range (the shipped light weights) runs as
  plain ``"fp16"``, without a copy. CUDA's first ``auto`` candidate.
* ``"<mode>-compiled"`` (``bf16-compiled``, ``bf16-head-compiled``, ``bf16-fusion-compiled``): the same
  split, the forward pass compiled by TorchInductor with frozen weights (:mod:`inference.cpu_compile`:
  prepacked oneDNN convolutions with fused bias/ReLU, fused element-wise tail), one slice per call. Same
  arithmetic as the eager mode up to operation order (label maps agree with the eager twin on ~99.7 % of
  the pixels with random weights), ~20 % less CPU time for the full network on one thread and much less
  sensitivity to a loaded machine at two, paid for by a compile at the first call (minutes cold on 2
  loaded cores; ~20-30 s when Inductor's on-disk cache has the kernels). Needs a C++ compiler on CPU.

Measured splits (full network, random weights, 512 px, agreement with fp32 on the bench slice / the two
calibration phantoms): bf16 everywhere 99.00 / 99.16 %; fp32 stem + layer1, bf16 from layer2 on 99.11 /
99.12 %; bf16 in layer3+layer4+head 99.12 %; layer4+head 99.36 / 99.40 %; head only (``bf16-head``)
99.59 / 99.51 %; stem+layer1+head 99.59 / 99.58 % (no faster: layer1 is cheap). Keeping the residual
stream of the bf16 blocks in fp32 does not help (98.95 %). The dilated layer3/layer4 are where bf16
rounding moves labels, so every passing split keeps the backbone in fp32; in the head, fp32 ASPP helps
most (fp32 Swin skips, conv skips or FPN convs change nothing or little). The speed has to come from
running the split faster, hence the compiled modes.

The final 1x1 classifier conv and the logit upsampling always run in fp32 (see ``BianqueHead``).

``choose_precision`` gates the reduced-precision modes: a mode is used only when its argmax label maps
agree with fp32 on >= 99.5 % of the pixels of two synthetic lumbar phantom slices, checked with the
loaded weights on the actual device when the Segmenter starts. ``auto_candidates`` gives the order to try:
on a CPU with bf16 units, eager ``bf16`` first (fast, no compile), then for the full network
``bf16-fusion-compiled`` (compiled only when whole-network bf16 fails the gate), then eager ``bf16-head``;
the light network is fast enough eagerly and is never compiled. A candidate that cannot run (no C++
compiler, compile error) is skipped and recorded in the choice's ``reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inference.cpu_compile import CompiledForward, cpu_compiler_available
from inference.model import INPUT_SIZE_MULTIPLE, BianqueNet
from inference.range_scaling import NO_SCALING, RangePlan, plan_range_scaling, range_scaled_copy
from inference.split_head import head_forward, low_precision_autocast

COMPILED_SUFFIX = "-compiled"
EAGER_MODES = ("fp32", "bf16", "bf16-head", "bf16-fusion", "fp16", "fp16-head", "fp16-scaled")
PRECISION_MODES = (*EAGER_MODES, "bf16-compiled", "bf16-head-compiled", "bf16-fusion-compiled",
                   "fp16-compiled", "fp16-head-compiled", "fp16-scaled-compiled")
WHOLE_NETWORK_SPLITS = ("bf16", "fp16", "fp16-scaled")  # backbone and head in reduced precision
HEAD_SPLITS = ("bf16", "bf16-head", "fp16", "fp16-head", "fp16-scaled")  # the whole head in reduced precision


def base_mode(mode: str) -> str:
    """The eager precision split of ``mode`` ("bf16-head-compiled" -> "bf16-head")."""
    return mode.removesuffix(COMPILED_SUFFIX)


def autocast_dtype(mode: str) -> torch.dtype:
    """The reduced-precision type of ``mode``: float16 for the fp16 modes, bfloat16 otherwise."""
    return torch.float16 if mode.startswith("fp16") else torch.bfloat16


class PrecisionWrapper(nn.Module):
    """Runs a BianqueNet with the given precision mode; returns fp32 logits at input resolution.

    Compiled modes compile at the first call, for the device of the network's weights. ``fp16-scaled`` plans
    its range scaling on ``calibration`` (preprocessed slices on the network's device; default: the
    calibration phantoms at the variant's input size), which ``choose_precision`` passes so that the plan and
    the gate see the same slices.
    """

    def __init__(self, net: BianqueNet, mode: str, calibration: torch.Tensor | None = None):
        super().__init__()
        if mode not in PRECISION_MODES:
            raise ValueError(f"unknown precision mode {mode!r}; use one of {PRECISION_MODES}")
        self.net = net
        self.mode = mode
        self.split = base_mode(mode)
        self.dtype = autocast_dtype(mode)
        self.overflows = 0  # fp16 forward passes rerun in fp32 because their logits were not finite
        self._compiled: CompiledForward | None = None
        self.range_plan: RangePlan | None = None  # fp16-scaled: the calibrated range scaling
        self._scaled_net: BianqueNet | None = None
        if mode.endswith(COMPILED_SUFFIX):
            device_type = next(net.parameters()).device.type
            # the bare forward pass is compiled; the fp16 overflow check below stays outside the graph
            inner = PrecisionWrapper(net, self.split, calibration)
            self.range_plan = inner.range_plan
            self._compiled = CompiledForward(NetworkForward(inner), device_type)
        elif self.split == "fp16-scaled":
            if calibration is None:
                device = next(net.parameters()).device
                calibration = torch.from_numpy(calibration_batch(net.config.default_input_size)).to(device)
            self.range_plan = plan_range_scaling(net, calibration)
            self._scaled_net = range_scaled_copy(net, self.range_plan)

    def _forward(self, x: torch.Tensor, split: str | None = None) -> torch.Tensor:
        """The network's forward pass with this wrapper's precision split (or ``split``, e.g. "fp32")."""
        split = split or self.split
        h, w = x.shape[-2:]
        dev = x.device.type
        net, plan = self.net, NO_SCALING
        if split == "fp16-scaled":
            if self._scaled_net is None or self.range_plan is None:
                raise RuntimeError(f"a {self.mode} wrapper has no fp16 range plan; build one for fp16-scaled")
            net, plan = self._scaled_net, self.range_plan
        with low_precision_autocast(dev, split in WHOLE_NETWORK_SPLITS, self.dtype):
            feats = net.backbone(x, plan.scaled_from, plan.scale)
        if split == "bf16-fusion":
            logits = head_forward(net.classifier, feats, bf16=True, aspp_fp32=True)
        else:
            with low_precision_autocast(dev, split in HEAD_SPLITS, self.dtype):
                logits = net.classifier(feats, dfe_scale=plan.scale)
        return F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % INPUT_SIZE_MULTIPLE or w % INPUT_SIZE_MULTIPLE:
            raise ValueError(f"BianqueNet input height and width must be multiples of 64, got {h}x{w}")
        logits = self._forward(x) if self._compiled is None else self._compiled(x)
        if self.dtype == torch.float16 and not bool(torch.isfinite(logits).all()):
            # fp16 overflowed somewhere (range ends at 65504): this batch again in fp32, never inf/NaN labels
            self.overflows += 1
            return self._forward(x, "fp32")
        return logits


class NetworkForward(nn.Module):
    """A PrecisionWrapper's bare forward pass, without its input-size check and fp16 overflow rerun: the part
    that ``torch.compile`` compiles (the data-dependent rerun would break the graph)."""

    def __init__(self, wrapper: PrecisionWrapper):
        super().__init__()
        self.wrapper = wrapper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wrapper._forward(x)


AGREEMENT_GATE = 0.995
CALIBRATION_SEEDS = (11, 12)


@dataclass(frozen=True)
class PrecisionChoice:
    mode: str
    agreement: dict[str, float]  # candidate mode -> fraction of label pixels equal to fp32's
    reason: str
    # the calibrated wrapper of ``mode`` (None for fp32): reuse it instead of building a second one, which
    # for a compiled mode would compile again
    runner: PrecisionWrapper | None = field(default=None, compare=False, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)  # candidate mode -> why it could not run


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


# the network variant whose CPU forward pass is worth compiling (the light one runs in ~0.06 s eagerly)
COMPILE_WORTHY_VARIANTS = ("bianquenet",)


def auto_candidates(variant: str, device: torch.device) -> tuple[str, ...]:
    """Reduced-precision modes for ``choose_precision`` to try, in order, for ``precision="auto"``.

    CUDA: ``fp16-scaled`` (whole network in fp16, the closest to fp32 of the fast modes, range-scaled where
    activations would leave fp16's range), ``bf16``, ``bf16-head``. CPU without bf16 units: none (fp32). CPU with bf16 units: ``bf16``
    (eager, no compile), then for the full network ``bf16-fusion-compiled`` when a C++ compiler exists
    (compiled only when whole-network bf16 failed the gate), then eager ``bf16-head``.
    """
    if device.type == "cuda":
        return ("fp16-scaled", "bf16", "bf16-head")
    if device.type != "cpu" or not cpu_has_bf16_units():
        return ()
    if variant in COMPILE_WORTHY_VARIANTS and cpu_compiler_available():
        return ("bf16", "bf16-fusion-compiled", "bf16-head")
    return ("bf16", "bf16-head")


@torch.inference_mode()
def choose_precision(net: BianqueNet, device: torch.device, input_size: int,
                     candidates: Sequence[str]) -> PrecisionChoice:
    """First candidate whose argmax label maps agree with fp32 on >= 99.5 % of pixels of the calibration
    phantoms; "fp32" when none does (or no calibration input can be made). A candidate that cannot run
    here (compiled mode without a C++ compiler, compile failure) or whose fp16 logits overflowed on a
    calibration slice is skipped and named in ``skipped``."""
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
    chosen, runner = "fp32", None
    skipped: dict[str, str] = {}
    for mode in candidates:
        try:
            wrapped = PrecisionWrapper(net_cl, mode, calibration=x)
            same = sum(int((wrapped(x[i:i + 1].contiguous(memory_format=torch.channels_last)).argmax(1) == r).sum())
                       for i, r in enumerate(ref))
        except Exception as exc:  # noqa: BLE001 - a mode that cannot run here is not chosen; the next is tried
            if not mode.endswith(COMPILED_SUFFIX):
                raise
            skipped[mode] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        agreement[mode] = same / float(sum(r.numel() for r in ref))
        if wrapped.overflows:
            # its labels came from the fp32 rerun: agreeing, but every batch would cost two forward passes
            skipped[mode] = f"fp16 overflow on {wrapped.overflows} of {len(ref)} calibration slices"
            continue
        if agreement[mode] >= AGREEMENT_GATE:
            chosen, runner = mode, wrapped
            break
    if chosen == "fp32":
        net.to(memory_format=torch.contiguous_format)
    reason = f"{chosen}: label agreement with fp32 {agreement}" if agreement else "fp32"
    if runner is not None and runner.range_plan is not None:
        reason += f"; {runner.range_plan.describe()}"
    if skipped:
        reason += f"; skipped {skipped}"
    return PrecisionChoice(chosen, agreement, reason, runner, skipped)
