"""A 3x3 convolution of bilinearly upsampled feature maps, computed at the maps' own resolution.

BianqueNet's fusion conv (``classifier.0``, 3x3, 1288 -> 256 channels at half input resolution) reads the
concatenation of the DFE output upsampled x8, the ``fpn_64`` output upsampled x4, the ``fpn_128`` output
upsampled x2 and ``fpn_256``. Channel mixing and bilinear upsampling are both linear, and mixing commutes
with any per-channel spatial operation, so for an upsampled part x (factor s) and each kernel tap k

    conv3x3(up_s(x)) = sum_k shift_k(up_s(W_k x))

where W_k is the tap's (C_out x C_in) matrix. The channel mixing then runs on s^2 times fewer pixels. The
spatial part (upsample, shift, sum over the nine taps) is itself a fixed linear map from the 9 tap maps of
each output channel to the s x s output phases, a 3x3 convolution on the low-resolution grid
(:func:`phase_kernel`), applied to every output channel (a grouped convolution with one shared kernel); the
phases are interleaved into the output as they are added to it. Bilinear upsampling with ``align_corners=False`` clamps at the border, which
replicate padding reproduces (applied to the input, with which the 1x1 mixing commutes). Only the outermost output ring differs, because there the convolution's zero padding cuts
taps that the low-resolution form extends; that ring is recomputed directly from thin strips of the
upsampled input (``_frame``). The result equals the plain computation up to floating-point summation
order (tested in float64 to 1e-12).

Measured on 2 CPU cores (bench/results/inference.md): with the x8 and x4 parts factored the full network runs
in 0.91-0.94x (compiled, four runs) / 0.90x (eager bf16) the time of the plain fusion. Parts with a factor below
``MIN_FACTOR`` take the plain path: on CPU the x2 parts gain nothing more (``BianqueHead.factored_min_factor
= 2`` factors them too, for GPUs, where the FLOPs they save matter more). The fusion conv drops from about 194
to 107 GMAC (of the network's ~380).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

MIN_FACTOR = 4  # upsampling factors below this take the plain path (measured: x2 gains nothing more on CPU)
HEAD_FACTORS = (2, 4, 8)  # BianqueNet's upsampling factors into the half-resolution fusion (at any input size)


def phase_kernel(s: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(s*s, 9, 3, 3): weight of tap map (ky, kx) at low-resolution offset (a, b) in -1..1 for output phase
    (py, px), the product of the per-axis weights. Per axis, output pixel y = s*m + p takes the bilinear
    (``align_corners=False``, unclamped) weight max(0, 1 - |d + 0.5 - s/2| / s) of the low-resolution sample at
    d = p + k - 1 - s*a. Built with tensor operations on ``device`` (no host table to copy)."""
    p = torch.arange(s, device=device, dtype=torch.float64).reshape(s, 1, 1)
    k = torch.arange(3, device=device, dtype=torch.float64).reshape(1, 3, 1)
    a = torch.arange(-1, 2, device=device, dtype=torch.float64).reshape(1, 1, 3)
    per_axis = (1.0 - ((p + k - 1.0 - s * a) + 0.5 - s / 2).abs() / s).clamp(min=0.0)  # [p, k, a + 1]
    kernel = per_axis[:, None, :, None, :, None] * per_axis[None, :, None, :, None, :]  # [py, px, ky, kx, a, b]
    return kernel.reshape(s * s, 9, 3, 3).to(dtype)


def _add_upsampled_part(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, s: int,
                        kernel: torch.Tensor | None) -> None:
    """``out += conv2d(up_s(x), weight, padding=1)`` (no bias), exact except on the outermost output ring.
    ``kernel``: ``phase_kernel(s)`` when the caller holds it (a module buffer), else it is built here."""
    n, c_in, h, w = x.shape
    c_out = weight.shape[0]
    # replicate padding commutes with the 1x1 mixing; padding the input is cheaper than padding 9 tap maps
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    taps = F.conv2d(padded, weight.permute(0, 2, 3, 1).reshape(c_out * 9, c_in, 1, 1))  # channel = c * 9 + k
    kernel = (phase_kernel(s, taps.dtype, taps.device) if kernel is None else kernel.to(taps.dtype))
    kernel = kernel.repeat(c_out, 1, 1, 1)  # the same for every channel
    phases = F.conv2d(taps, kernel, groups=c_out)  # (n, c_out * s * s, h, w), channel = c * s * s + phase
    # out[n, c, s*i + py, s*j + px] += phases[n, c*s*s + s*py + px, i, j]: pixel_shuffle folded into the add
    out.view(n, c_out, h, s, w, s).add_(phases.view(n, c_out, s, s, h, w).permute(0, 1, 4, 2, 5, 3))


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _frame(parts: Sequence[tuple[torch.Tensor, int]], size: tuple[int, int]) -> list[torch.Tensor]:
    """The first / last two rows and columns of the upsampled, concatenated input (exact: with integer
    factors, the outer two output rows depend only on the outer two input rows)."""
    h, w = size
    strips: list[list[torch.Tensor]] = [[], [], [], []]
    for x, s in parts:
        if s == 1:
            pieces = [x[:, :, :2], x[:, :, -2:], x[:, :, :, :2], x[:, :, :, -2:]]
        else:
            pieces = [_up(x[:, :, :2], (2 * s, w))[:, :, :2], _up(x[:, :, -2:], (2 * s, w))[:, :, -2:],
                      _up(x[:, :, :, :2], (h, 2 * s))[:, :, :, :2], _up(x[:, :, :, -2:], (h, 2 * s))[:, :, :, -2:]]
        for strip, piece in zip(strips, pieces, strict=True):
            strip.append(piece)
    return [torch.cat(strip, 1) for strip in strips]


def supports(conv: nn.Conv2d) -> bool:
    """A plain 3x3 convolution with padding 1 (what the factorisation is written for)."""
    return (conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def conv_of_upsampled(conv: nn.Conv2d, parts: Sequence[tuple[torch.Tensor, int]],
                      size: tuple[int, int], min_factor: int = MIN_FACTOR,
                      kernels: Mapping[int, torch.Tensor] | None = None) -> torch.Tensor:
    """``conv(cat([up(x, size) for x, s in parts], 1))`` with bilinear ``align_corners=False`` upsampling, where
    each part's factor ``s`` is an integer with ``x.shape[-2:] * s == size`` (1: not upsampled). Parts with
    ``s >= min_factor`` are mixed at their own resolution; the rest take the plain path. ``kernels``: the
    phase kernels by factor, held by the caller as module buffers (measured on CPU: TorchInductor then
    treats them as constants, prepacked with the frozen weights, 0.94x instead of 0.98x of the plain time
    when each call builds them; on CUDA they are device tensors a CUDA graph can hold)."""
    if not supports(conv):
        raise ValueError(f"conv_of_upsampled needs a 3x3 convolution with padding 1, got {conv}")
    h, w = size
    if h < 2 or w < 2:
        raise ValueError(f"output size {size} is too small")
    weight, bias = conv.weight, conv.bias
    plain: list[torch.Tensor] = []
    plain_weights: list[torch.Tensor] = []
    factored: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    c0 = 0
    for x, s in parts:
        if x.shape[-2] * s != h or x.shape[-1] * s != w:
            raise ValueError(f"part of size {tuple(x.shape[-2:])} does not upsample by {s} to {size}")
        part_weight = weight[:, c0 : c0 + x.shape[1]]
        c0 += x.shape[1]
        if s >= min_factor:
            factored.append((x, part_weight, s))
        else:
            plain.append(x if s == 1 else _up(x, size))
            plain_weights.append(part_weight)
    if c0 != weight.shape[1]:
        raise ValueError(f"parts hold {c0} channels, the convolution expects {weight.shape[1]}")
    # the parts are summed in float32 (at least): under bf16 autocast, summing in bf16 adds roundings the plain
    # conv (one rounding of an fp32 accumulator) does not have (full network, random weights: label agreement
    # with fp32 99.57 % when summed in bf16, 99.60 % in fp32, plain conv 99.59 %)
    if plain:
        out = F.conv2d(torch.cat(plain, 1), torch.cat(plain_weights, 1), bias, padding=1)
        out = out.to(torch.promote_types(out.dtype, torch.float32))
    else:
        x = parts[0][0]
        out = torch.zeros((x.shape[0], weight.shape[0], h, w), dtype=torch.promote_types(x.dtype, torch.float32),
                          device=x.device)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1).to(out.dtype)
    for x, part_weight, s in factored:
        _add_upsampled_part(out, x, part_weight, s, None if kernels is None else kernels.get(s))
    top, bottom, left, right = _frame(parts, size)
    out[:, :, :1] = F.conv2d(F.pad(top, (1, 1, 1, 0)), weight, bias)
    out[:, :, -1:] = F.conv2d(F.pad(bottom, (1, 1, 0, 1)), weight, bias)
    out[:, :, :, :1] = F.conv2d(F.pad(left, (1, 0, 1, 1)), weight, bias)
    out[:, :, :, -1:] = F.conv2d(F.pad(right, (0, 1, 1, 1)), weight, bias)
    return out
