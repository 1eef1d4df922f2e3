"""Small mask helpers shared by both quantitation methods (pure NumPy / OpenCV, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Crop:
    """A mask cut out of the full grid; (r0, c0) is the crop's origin on the full grid."""

    mask: BoolArray
    r0: int
    c0: int

    @property
    def box(self) -> tuple[slice, slice]:
        """The crop's rows and columns on the full grid: ``image[crop.box]`` is the image under ``mask``."""
        return slice(self.r0, self.r0 + self.mask.shape[0]), slice(self.c0, self.c0 + self.mask.shape[1])


def crop(mask: BoolArray, margin: int) -> Crop | None:
    """Bounding box of a mask plus ``margin`` pixels (clipped), or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0 = max(int(rows[0]) - margin, 0)
    r1 = min(int(rows[-1]) + margin + 1, mask.shape[0])
    c0 = max(int(cols[0]) - margin, 0)
    c1 = min(int(cols[-1]) + margin + 1, mask.shape[1])
    return Crop(mask[r0:r1, c0:c1], r0, c0)


def fill_holes(mask: BoolArray) -> BoolArray:
    """Holes filled, computed on the mask's bounding box (full-size result)."""
    c = crop(mask, 1)
    out = np.zeros_like(mask)
    if c is None:
        return out
    out[c.box] = ndimage.binary_fill_holes(c.mask)
    return out


def largest_component_filled(mask: BoolArray) -> BoolArray:
    """Largest 8-connected component (by pixel count) with its holes filled."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.copy()
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return ndimage.binary_fill_holes(labels == best)


def edge_points(mask: BoolArray) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Sub-pixel boundary samples: midpoints between 4-neighbour pixel pairs of which exactly one is
    inside the mask. On a polygon rasterised by pixel centres they scatter around the true edge
    without bias. Returned as (row, col) in the mask's pixel coordinates, plus a flag that is True for
    samples between horizontal neighbours (uncertain along the row, exact in row) and False for samples
    between vertical neighbours (uncertain along the column)."""
    m = np.pad(mask, 1)
    hr, hc = np.nonzero(m[:, 1:] != m[:, :-1])  # between (r, c) and (r, c+1) of the padded grid
    vr, vc = np.nonzero(m[1:, :] != m[:-1, :])
    rows = np.concatenate([hr - 1.0, vr - 0.5])
    cols = np.concatenate([hc - 0.5, vc - 1.0])
    horizontal = np.concatenate([np.ones(hr.size, dtype=bool), np.zeros(vr.size, dtype=bool)])
    return np.stack([rows, cols], axis=1), horizontal


def outline(mask: BoolArray, r0: int = 0, c0: int = 0) -> tuple[tuple[float, float], ...] | None:
    """Outer contour of the largest blob (pixel centres, simplified), as (row, col) on the full grid."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    pts = best.reshape(-1, 2)
    if len(pts) < 3:
        return None
    return tuple((float(y + r0), float(x + c0)) for x, y in pts)


@dataclass(frozen=True)
class Chord:
    """Where a line through a point crosses a mask: start/end (row, col) and the length in mm."""

    start: tuple[float, float]
    end: tuple[float, float]
    length_mm: float
    touches_border: bool


def chord(
    mask: BoolArray,
    centre: tuple[float, float],
    direction_mm: tuple[float, float],
    spacing: tuple[float, float],
    step_px: float = 0.25,
) -> Chord | None:
    """The run of mask pixels along the line through ``centre`` (pixel coords) with physical direction
    ``direction_mm`` (dy, dx in mm), sampled every ``step_px`` pixels with nearest-pixel lookup. The
    run containing the centre is used (or the nearest run when the centre is outside the mask); its ends
    are then placed where the bilinear interpolant of the mask crosses 0.5 (``_refine_crossing``), so a
    run of m whole pixels along a row is m pixels long (edge to edge) and a slanted boundary is not
    quantised to the pixel staircase. Returns None when the line misses the mask."""
    sr, sc = spacing
    d = np.array([direction_mm[0] / sr, direction_mm[1] / sc], dtype=np.float64)
    norm = float(np.hypot(*d))
    if norm == 0.0:
        return None
    d /= norm
    h, w = mask.shape
    reach = float(h + w)
    ts = np.arange(-reach, reach + step_px, step_px)
    pr = centre[0] + ts * d[0]
    pc = centre[1] + ts * d[1]
    ir = np.rint(pr).astype(np.int64)
    ic = np.rint(pc).astype(np.int64)
    valid = (ir >= 0) & (ir < h) & (ic >= 0) & (ic < w)
    inside = np.zeros(ts.shape, dtype=bool)
    inside[valid] = mask[ir[valid], ic[valid]]
    hits = np.flatnonzero(inside)
    if hits.size == 0:
        return None
    i_mid = int(np.argmin(np.abs(ts)))
    i = i_mid if inside[i_mid] else int(hits[np.argmin(np.abs(hits - i_mid))])
    # run boundaries
    outside = np.flatnonzero(~inside)
    before = outside[outside < i]
    after = outside[outside > i]
    i0 = int(before[-1]) + 1 if before.size else 0
    i1 = int(after[0]) - 1 if after.size else ts.size - 1
    touches = i0 == 0 or i1 == ts.size - 1 or not bool(valid[i0 - 1]) or not bool(valid[i1 + 1])
    t0 = _refine_crossing(mask, centre, d, float(ts[i0] - step_px / 2), rising=True)
    t1 = _refine_crossing(mask, centre, d, float(ts[i1] + step_px / 2), rising=False)
    start = (float(centre[0] + t0 * d[0]), float(centre[1] + t0 * d[1]))
    end = (float(centre[0] + t1 * d[0]), float(centre[1] + t1 * d[1]))
    length = float(np.hypot((end[0] - start[0]) * sr, (end[1] - start[1]) * sc))
    return Chord(start, end, length, bool(touches))


_REFINE_REACH_PX = 1.5
_REFINE_STEP_PX = 0.05


def _refine_crossing(
    mask: BoolArray, centre: tuple[float, float], d: NDArray[np.float64], t_coarse: float, *, rising: bool
) -> float:
    """Sub-pixel end of a run: the parameter t near ``t_coarse`` (within 1.5 pixels) where the bilinear
    interpolant of the mask along ``centre + t d`` crosses 0.5, going into the mask with increasing t
    (``rising``) or out of it. For a boundary between whole pixels this is the shared pixel edge.
    Returns ``t_coarse`` when there is no crossing in reach."""
    ts = t_coarse + np.arange(-_REFINE_REACH_PX, _REFINE_REACH_PX + _REFINE_STEP_PX / 2, _REFINE_STEP_PX)
    coords = np.stack([centre[0] + ts * d[0], centre[1] + ts * d[1]])
    # interpolate in a small window around the samples (the mask outside the grid counts as 0)
    r0 = max(int(np.floor(coords[0].min())) - 1, 0)
    c0 = max(int(np.floor(coords[1].min())) - 1, 0)
    r1 = min(int(np.ceil(coords[0].max())) + 2, mask.shape[0])
    c1 = min(int(np.ceil(coords[1].max())) + 2, mask.shape[1])
    if r0 >= r1 or c0 >= c1:
        return t_coarse
    window = mask[r0:r1, c0:c1].astype(np.float32)
    local = coords - np.array([[r0], [c0]], dtype=np.float64)
    f = ndimage.map_coordinates(window, local, order=1, mode="constant", cval=0.0) - 0.5
    if rising:
        idx = np.flatnonzero((f[:-1] < 0) & (f[1:] >= 0))
    else:
        idx = np.flatnonzero((f[:-1] >= 0) & (f[1:] < 0))
    if idx.size == 0:
        return t_coarse
    i = int(idx[np.argmin(np.abs(ts[idx] - t_coarse))])
    frac = float(f[i] / (f[i] - f[i + 1]))
    return float(ts[i] + frac * (ts[i + 1] - ts[i]))
