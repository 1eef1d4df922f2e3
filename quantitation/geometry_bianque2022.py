"""The original BianqueNet geometry (``calcu_HV``, ``calcu_WD``, ``calcu_DHI``; spec 5.1-5.7).

Reproduced on purpose, including its known flaws (Shi-Tomasi corners on a binary mask, the 0.8 factor in
DH, the S1 pairing rule, truncations), so that values are comparable with the published references.
Deviations from the original, all about not crashing: fewer than four corners, a walk that reaches the
border, a vertical disc axis and columns outside the image become a ``GeometryError`` instead of an
exception that loses the whole image; the column bound of the 80 % trimming is the image width (the
original used the row count, F8), and negative columns are clipped instead of wrapping.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from quantitation.geometry_types import DiscAxis, DiscHeight, DiscWidth, GeometryError, Point, VertebraGeometry
from quantitation.masks import BoolArray, crop

MAX_CORNERS = 4
QUALITY_LEVEL = 0.01
MIN_DISTANCE = 21
BLOCK_SIZE = 9
MU = 0.8  # central fraction
Q = 0.75  # cut-segment length factor
_MARGIN = 16  # crop margin; >= blockSize + Sobel support, so corner responses are unchanged


def shi_tomasi_corners(mask: BoolArray) -> list[tuple[int, int]]:
    """Up to four (row, col) corners in detector order, coordinates truncated (``np.int0``)."""
    c = crop(mask, _MARGIN)
    if c is None:
        raise GeometryError("mask is empty")
    pts = cv2.goodFeaturesToTrack(
        c.mask.astype(np.float32),
        maxCorners=MAX_CORNERS,
        qualityLevel=QUALITY_LEVEL,
        minDistance=MIN_DISTANCE,
        blockSize=BLOCK_SIZE,
        useHarrisDetector=False,
        k=0.04,
    )
    if pts is None:
        return []
    return [(int(y) + c.r0, int(x) + c.c0) for x, y in pts.reshape(-1, 2)]


def order_corners(pts: list[tuple[int, int]], *, s1_rule: bool = False) -> tuple[Point, Point, Point, Point]:
    """Order four (row, col) corners as [ant-sup, post-sup, ant-inf, post-inf] with the original rule."""
    if len(pts) < 4:
        raise GeometryError(f"fewer than four corners found ({len(pts)})")
    s = [h + w for h, w in pts]
    i3 = int(np.argmax(s))
    i0 = int(np.argmin(s))
    if i0 == i3:
        raise GeometryError("degenerate corners (all on one anti-diagonal)")
    rest = [i for i in range(4) if i not in (i0, i3)]
    a, b = pts[rest[0]], pts[rest[1]]
    key = (lambda p: p[0] + p[1]) if s1_rule else (lambda p: p[0])
    if key(a) > key(b):
        slot2, slot1 = a, b
    else:
        slot2, slot1 = b, a
    slots = [pts[i0], slot1, slot2, pts[i3]]
    if slots[1][1] < slots[0][1]:
        slots[0], slots[1] = slots[1], slots[0]
    if slots[3][1] < slots[2][1]:
        slots[2], slots[3] = slots[3], slots[2]
    c0, c1, c2, c3 = ((float(h), float(w)) for h, w in slots)
    return c0, c1, c2, c3


def _dist(p: Point, q: Point) -> float:
    return math.hypot(p[0] - q[0], p[1] - q[1])


def _mm(p: Point, q: Point, spacing: tuple[float, float]) -> float:
    return math.hypot((p[0] - q[0]) * spacing[0], (p[1] - q[1]) * spacing[1])


def _tilt(c0: Point, c1: Point) -> float:
    """Angle of the c0->c1 line to the column axis in degrees; positive when c0 (anterior) is lower."""
    return math.degrees(math.atan2(c0[0] - c1[0], c1[1] - c0[1]))


def vertebra(mask: BoolArray, spacing: tuple[float, float], *, s1_rule: bool = False) -> VertebraGeometry:
    """Corners and HV = area / mean endplate corner distance (spec 5.1, 5.2)."""
    corners = order_corners(shi_tomasi_corners(mask), s1_rule=s1_rule)
    c0, c1, c2, c3 = corners
    mean_w = 0.5 * (_dist(c0, c1) + _dist(c2, c3))
    if mean_w <= 0:
        raise GeometryError("coincident corners")
    area = float(np.count_nonzero(mask))
    hv_px = area / mean_w
    mean_w_mm = 0.5 * (_mm(c0, c1, spacing) + _mm(c2, c3, spacing))
    hv_mm = area * spacing[0] * spacing[1] / mean_w_mm
    return VertebraGeometry(corners, hv_px, hv_mm, _tilt(c0, c1))


def disc_axis(upper: VertebraGeometry, lower: VertebraGeometry, spacing: tuple[float, float]) -> DiscAxis:
    u, d = upper.corners, lower.corners
    a = ((u[2][0] + d[0][0]) / 2, (u[2][1] + d[0][1]) / 2)
    p = ((u[3][0] + d[1][0]) / 2, (u[3][1] + d[1][1]) / 2)
    return DiscAxis(a, p, _dist(a, p), _mm(a, p, spacing), _tilt(a, p))


def wd_big(disc: BoolArray, axis: DiscAxis, spacing: tuple[float, float]) -> DiscWidth:
    """The original column walk from the mid-points outward along the A-P line (spec 5.3)."""
    (ah, aw), (ph, pw) = axis.anterior_mid, axis.posterior_mid
    h, w = disc.shape
    if int(ah) == int(ph):
        row_a: float | None = float(int(ah))
        m = b = 0.0
    else:
        if pw == aw:
            raise GeometryError("vertical disc axis: WD_big walk undefined")
        row_a = None
        m = (ph - ah) / (pw - aw)
        b = ah - m * aw

    def row(col: int) -> int:
        return int(row_a) if row_a is not None else int(m * col + b)

    def walk(start: int, step: int, stop: int) -> tuple[int, int]:
        last = (row(start), start)
        col = start
        while True:
            if col == stop:
                raise GeometryError("WD_big walk reached the image border")
            r = row(col)
            if not (0 <= r < h and 0 <= col < w):
                raise GeometryError("WD_big walk reached the image border")
            if not disc[r, col]:
                return last
            last = (r, col)
            col += step

    post = walk(int(pw), +1, w)
    ant = walk(int(aw), -1, 0)  # column 0 is never tested
    return DiscWidth(_dist(post, ant), _mm(post, ant, spacing))


def _cut_points(axis: DiscAxis) -> tuple[tuple[int, int], ...]:
    (ah, aw), (ph, pw) = axis.anterior_mid, axis.posterior_mid
    ch, cw = (ah + ph) / 2, (aw + pw) / 2
    dh, dw = abs(ah - ph), abs(aw - pw)
    hm, hq = MU / 2, Q / 2
    if ah < ph:
        pts = (
            (ch - hm * dh - hq * dw, cw - hm * dw + hq * dh),
            (ch - hm * dh + hq * dw, cw - hm * dw - hq * dh),
            (ch + hm * dh - hq * dw, cw + hm * dw + hq * dh),
            (ch + hm * dh + hq * dw, cw + hm * dw - hq * dh),
        )
    else:
        pts = (
            (ch + hm * dh - hq * dw, cw - hm * dw - hq * dh),
            (ch + hm * dh + hq * dw, cw - hm * dw + hq * dh),
            (ch - hm * dh - hq * dw, cw + hm * dw - hq * dh),
            (ch - hm * dh + hq * dw, cw + hm * dw + hq * dh),
        )
    return tuple((int(r), int(c)) for r, c in pts)


def _raster(p0: tuple[int, int], p1: tuple[int, int]) -> list[tuple[int, int]]:
    """(row, col) for each integer row in [p0.row, p1.row), end excluded; banker's rounding."""
    (h0, w0), (h1, w1) = p0, p1
    out = []
    if w1 == w0:
        return [(j, w0) for j in range(h0, h1)]
    m = (h1 - h0) / (w1 - w0)
    b = h0 - m * w0
    if m == 0:
        return []
    for j in range(h0, h1):
        out.append((j, round((j - b) / m)))
    return out


def central_area_px(disc: BoolArray, axis: DiscAxis) -> int:
    """A80: the disc pixels left after the original 80 % trimming (spec 5.4)."""
    lu, ld, ru, rd = _cut_points(axis)
    trimmed = disc.copy()
    h, w = trimmed.shape
    for j, col in _raster(lu, ld):
        if 0 <= j < h:
            trimmed[j, : min(max(col, 0), w)] = False
    for j, col in _raster(ru, rd):
        if 0 <= j < h:
            trimmed[j, min(max(col, 0), w) :] = False
    return int(np.count_nonzero(trimmed))


def disc_height(disc: BoolArray, axis: DiscAxis, spacing: tuple[float, float]) -> DiscHeight:
    """DH = A80 / WD_small (px; contains the original ~0.8 factor, spec 5.5)."""
    if axis.wd_small_px <= 0:
        raise GeometryError("zero disc width")
    dh_px = central_area_px(disc, axis) / axis.wd_small_px
    # mm: the px height measured perpendicular to the axis
    (ah, aw), (ph, pw) = axis.anterior_mid, axis.posterior_mid
    n = (pw - aw, -(ph - ah))  # perpendicular in pixel units (row, col)
    norm = math.hypot(*n)
    scale = math.hypot(n[0] / norm * spacing[0], n[1] / norm * spacing[1])
    return DiscHeight(dh_px, dh_px * scale)
