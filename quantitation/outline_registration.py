"""Disc outline registered to the image before ΔSI is read (default method).

A segmentation places a disc's outline to within a pixel or two, and where it runs inside or outside the
dark line that bounds the disc (outer annulus, endplate) changes the share of dark pixels in the disc's
histogram: with the mask as drawn, a one-pixel erosion or dilation of the annotated masks moved the peak
difference of 20 of 356 real discs by 3-12 grey levels (quantitation/README.md). The line is in the image:
on T2 the grey level falls from the nucleus through the annulus to the disc's boundary and rises into the
vertebral marrow. So each half of the outline (cranial and caudal, split along the disc's long axis) is moved
by whole pixels to the ring that is dark and has brighter tissue just outside it.

Rings: ring ``k`` is the set of pixels ``k`` 4-connected steps outside the mask (``k`` >= 1) or ``-k`` steps
inside its outermost pixels (ring 0); the mask grown or shrunk by ``k`` steps is exactly the rings <= ``k``
(``signed_steps``). For each half, ring ``k`` (``|k| <= reach``, and at least ``CORE_RINGS`` rings outside the
innermost one, so that a dark mid-height line such as an intranuclear cleft is never taken for the boundary)
scores ``share * L(k+1) - L(k)`` with ``L`` the mean grey level of the half's ring (equal parts "dark" and
"brighter outside"); the half's offset is the
softmax-weighted mean of ``k`` (temperature in grey levels), so the result moves continuously where two rings
are about equally good. A pixel of that half belongs to the registered disc with membership
``clip(offset - k_pixel + 1, 0, 1)`` (a fractional offset takes part of the outermost ring) and lies
``offset - k_pixel + 1`` steps deep in it. A mask grown or shrunk by one pixel has the same rings shifted by one
step, finds the same line, and so reads the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

REGISTRATION_REACH_PX: int = 4  # each half of the outline may move by up to this many pixels either way
RING_TEMPERATURE: float = 4.0  # grey levels of ring score per e-fold of weight
OUTSIDE_SHARE: float = 0.5  # weight of the next ring's level in a ring's score (share * L(k+1) - L(k))
MIN_REGION_PIXELS: int = 10  # a shrunk outline must keep at least this many pixels
CORE_RINGS: int = 2  # the outline never moves onto the disc's innermost rings (its mid-height line and the next)


@dataclass(frozen=True)
class RegisteredOutline:
    """A disc's outline moved to the image, as a soft region on the mask's grid."""

    membership: FloatArray  # 0..1 per pixel: share of the pixel inside the registered outline
    depth: FloatArray  # steps inside the registered outline: > 0 in it (< 1 on a partly included ring), <= 0 outside
    offsets: tuple[float, float]  # pixels each half moved (cranial-side half first; > 0: outwards)


def signed_steps(mask: BoolArray) -> NDArray[np.int64]:
    """Ring index of every pixel: 4-connected steps outside the mask (1, 2, ...), or 0 for the mask's outermost
    pixels, -1 for the next ring inside, ... The grid is treated as surrounded by outside pixels."""
    inside = ndimage.distance_transform_cdt(np.pad(mask, 1), metric="taxicab")[1:-1, 1:-1]
    if mask.all():
        return -(inside.astype(np.int64) - 1)
    outside = ndimage.distance_transform_cdt(~mask, metric="taxicab")
    return np.where(mask, 1 - inside, outside).astype(np.int64)


def disc_halves(mask: BoolArray) -> BoolArray:
    """The grid split in two by the line through the disc's centroid along its long axis (the principal axis of
    its pixels): True on the caudal side, False on the cranial side, one half per endplate."""
    rows, cols = np.nonzero(mask)
    centre = np.array([rows.mean(), cols.mean()])
    if rows.size < 3:
        return np.zeros(mask.shape, dtype=bool)
    _, vectors = np.linalg.eigh(np.cov(np.stack([rows, cols]).astype(np.float64)))
    normal = vectors[:, 0]  # the short axis (smallest variance): across the disc
    if normal[0] < 0:  # point caudally (rows grow head -> feet), so "False" is the cranial half
        normal = -normal
    r, c = np.indices(mask.shape)
    return (r - centre[0]) * normal[0] + (c - centre[1]) * normal[1] > 0


def register_outline(
    image: NDArray[np.uint8],
    mask: BoolArray,
    *,
    allowed: BoolArray | None = None,
    reach: int = REGISTRATION_REACH_PX,
    temperature: float = RING_TEMPERATURE,
    share: float = OUTSIDE_SHARE,
) -> RegisteredOutline:
    """Register ``mask`` to ``image`` (same shape; the grid should extend ``reach`` + 1 pixels beyond the mask).
    ``allowed``: where the outline may grow (pixels outside it are never part of the registered disc and take
    no part in the ring levels); the mask itself is always allowed."""
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("empty disc mask")
    if reach < 0 or temperature <= 0:
        raise ValueError("reach must be >= 0 and temperature > 0")
    steps = signed_steps(mask)
    innermost = int(steps.min())  # the disc's mid-height line (the same pixels for the mask grown or shrunk)
    usable = np.ones(mask.shape, dtype=bool) if allowed is None else (np.asarray(allowed, dtype=bool) | mask)
    grey = image.astype(np.float64)
    half = disc_halves(mask)
    offset_map = np.zeros(mask.shape)
    offsets: list[float] = []
    for side in (False, True):
        sel = (half == side) & usable
        level = {}
        for k in range(-reach, reach + 2):
            ring = sel & (steps == k)
            if ring.any():
                level[k] = float(grey[ring].mean())
        ks, scores = [], []
        for k in range(-reach, reach + 1):
            if k not in level or k + 1 not in level:
                continue
            if k < innermost + CORE_RINGS or (k < 0 and np.count_nonzero(steps <= k) < MIN_REGION_PIXELS):
                continue
            ks.append(k)
            scores.append(share * level[k + 1] - level[k])
        if ks:
            s = np.asarray(scores)
            w = np.exp((s - s.max()) / temperature)
            offset = float(np.dot(ks, w) / w.sum())
        else:
            offset = 0.0
        offsets.append(offset)
        offset_map[half == side] = offset
    depth = offset_map - steps + 1.0
    membership = np.clip(depth, 0.0, 1.0) * usable
    return RegisteredOutline(membership=membership, depth=depth, offsets=(offsets[0], offsets[1]))
