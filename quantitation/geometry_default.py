"""Sound geometry (method ``default``): fitted-quadrilateral corners, true mean central height, mm.

All geometry is done in physical coordinates (y = row * row_spacing, x = col * col_spacing, in mm), so
anisotropic pixels are handled exactly; points are handed back on the pixel grid as (row, col).

Corners: the boundary of the (largest, hole-filled) body is sampled at sub-pixel edge midpoints; a
minimum-area rectangle gives the body's frame, the side facing the cranial neighbour is the superior
endplate (so the sacral endplate is found for any tilt); corners are first the extreme boundary points
along the frame's diagonals, then refined as the intersections of straight lines fitted (trimmed total
least squares) to the central part of each side. Corners therefore sit on, or for rounded bodies just
outside, the boundary; they never move inward the way Shi-Tomasi corners on a binary mask do.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from quantitation.geometry_types import DiscAxis, DiscHeight, DiscWidth, GeometryError, Point, VertebraGeometry
from quantitation.masks import BoolArray, chord, crop, edge_points, largest_component_filled

MU = 0.8  # central fraction of the disc axis used for DH
MAX_TILT_DEG = 45.0
_SIDE_TRIM = 0.15  # fraction of each side, at both ends, left out of the line fit (rounded corners)
_MARGIN = 2
Vec = NDArray[np.float64]


def _unit(v: Vec) -> Vec:
    n = float(np.hypot(v[0], v[1]))
    if n == 0:
        raise GeometryError("degenerate direction")
    return v / n


def _weighted_tls(pts: Vec, w: Vec) -> tuple[Vec, Vec]:
    """Weighted centroid and principal direction (closed-form 2x2 eigenvector)."""
    sw = float(w.sum())
    centre = (pts * w[:, None]).sum(axis=0) / sw
    d = pts - centre
    syy = float((w * d[:, 0] * d[:, 0]).sum())
    sxx = float((w * d[:, 1] * d[:, 1]).sum())
    sxy = float((w * d[:, 0] * d[:, 1]).sum())
    angle = 0.5 * math.atan2(2 * sxy, syy - sxx)  # direction angle measured from the y axis
    return centre, np.array([math.cos(angle), math.sin(angle)])


def _fit_line(pts: Vec, horizontal: NDArray[np.bool_], spacing: tuple[float, float]) -> tuple[Vec, Vec]:
    """Line (point, unit direction) through boundary samples, by weighted total least squares.

    A sample between horizontal neighbours is uncertain by +-half a pixel along x only, one between
    vertical neighbours along y only; its variance across the line is therefore (n_x sc)^2/12 or
    (n_y sr)^2/12 for the line normal n. Near-axis-aligned edges are thus placed by the few exact
    samples at their pixel steps instead of the biased staircase. One trimming pass drops outliers
    (e.g. boundary samples of a rounded corner)."""
    sr, sc = spacing
    floor = (0.05 * min(sr, sc)) ** 2
    w = np.ones(len(pts))
    centre, direction = _weighted_tls(pts, w)
    keep = np.ones(len(pts), dtype=bool)
    for it in range(3):
        normal = np.array([-direction[1], direction[0]])
        var = np.where(horizontal, (normal[1] * sc) ** 2, (normal[0] * sr) ** 2) / 12.0 + floor
        res = (pts - centre) @ normal
        if it == 1:
            keep = np.abs(res) <= 3.0 * np.sqrt(var) + 0.5 * max(sr, sc)
            if keep.sum() < 3:
                keep[:] = True
        w = keep / var
        centre, direction = _weighted_tls(pts, w)
    return centre, direction


def _intersect(l1: tuple[Vec, Vec], l2: tuple[Vec, Vec]) -> Vec | None:
    (p, d), (q, e) = l1, l2
    m = np.array([[d[0], -e[0]], [d[1], -e[1]]])
    det = float(np.linalg.det(m))
    if abs(det) < 1e-6:
        return None
    t, _ = np.linalg.solve(m, q - p)
    return p + t * d


def fit_corners(
    mask_phys_pts: Vec, horizontal: NDArray[np.bool_], spacing: tuple[float, float], cranial_dir: Vec
) -> tuple[Vec, Vec, Vec, Vec]:
    """Corners (physical (y, x)) [ant-sup, post-sup, ant-inf, post-inf] from boundary samples.

    ``horizontal``: kind of each sample (see ``masks.edge_points``); ``cranial_dir``: unit vector from
    the body towards its cranial neighbour.
    """
    pts = mask_phys_pts
    (cx, cy), _, _ = cv2.minAreaRect(pts[:, ::-1].astype(np.float32))
    box = cv2.boxPoints(cv2.minAreaRect(pts[:, ::-1].astype(np.float32)))[:, ::-1].astype(np.float64)
    centre = np.array([cy, cx])
    e1 = _unit(box[1] - box[0])
    e2 = np.array([-e1[1], e1[0]])
    # height axis: the frame axis closest to the cranial direction; points caudally
    ev = e1 if abs(e1 @ cranial_dir) >= abs(e2 @ cranial_dir) else e2
    if ev @ cranial_dir > 0:
        ev = -ev
    eu = np.array([-ev[1], ev[0]])  # caudal (1, 0) -> posterior (0, 1)
    rel = pts - centre
    u, v = rel @ eu, rel @ ev
    hu, hv = float(np.abs(u).max()), float(np.abs(v).max())
    if hu == 0 or hv == 0:
        raise GeometryError("degenerate body outline")
    un, vn = u / hu, v / hv
    init = [pts[int(np.argmax(su * un + sv * vn))] for su, sv in ((-1, -1), (1, -1), (-1, 1), (1, 1))]
    # sides as index pairs into init: superior, posterior, inferior, anterior
    sides = ((0, 1), (1, 3), (2, 3), (0, 2))
    dist = np.empty((len(sides), len(pts)))
    tpar = np.empty_like(dist)
    for k, (i, j) in enumerate(sides):
        a, b = init[i], init[j]
        d = b - a
        length = float(np.hypot(*d))
        if length == 0:
            raise GeometryError("degenerate body outline (coincident corners)")
        d = d / length
        n = np.array([-d[1], d[0]])
        dist[k] = np.abs((pts - a) @ n)
        tpar[k] = ((pts - a) @ d) / length
    owner = np.argmin(dist, axis=0)
    lines: list[tuple[Vec, Vec] | None] = []
    for k in range(len(sides)):
        sel = (owner == k) & (tpar[k] >= _SIDE_TRIM) & (tpar[k] <= 1 - _SIDE_TRIM)
        lines.append(_fit_line(pts[sel], horizontal[sel], spacing) if sel.sum() >= 3 else None)
    # corner = intersection of its two sides; keep the diagonal extreme if a side could not be fitted
    corner_sides = {0: (0, 3), 1: (0, 1), 2: (2, 3), 3: (1, 2)}
    out = []
    scale = max(hu, hv)
    for ci in range(4):
        a, b = corner_sides[ci]
        la, lb = lines[a], lines[b]
        p = _intersect(la, lb) if la is not None and lb is not None else None
        if p is None or float(np.hypot(*(p - init[ci]))) > 0.5 * scale:
            p = init[ci]
        out.append(p)
    return out[0], out[1], out[2], out[3]


def _to_px(p: Vec, spacing: tuple[float, float]) -> Point:
    return (float(p[0] / spacing[0]), float(p[1] / spacing[1]))


def _len_px(v_mm: Vec, spacing: tuple[float, float]) -> float:
    return float(np.hypot(v_mm[0] / spacing[0], v_mm[1] / spacing[1]))


def _tilt(ant: Vec, post: Vec) -> float:
    """Angle of the ant->post line to the column axis (degrees); positive when the anterior end is lower."""
    return math.degrees(math.atan2(ant[0] - post[0], post[1] - ant[1]))


def body_mask(mask: BoolArray) -> tuple[BoolArray, int, int]:
    """Largest filled component in a cropped window, with the window origin."""
    c = crop(mask, _MARGIN)
    if c is None:
        raise GeometryError("mask is empty")
    return largest_component_filled(c.mask), c.r0, c.c0


def vertebra(
    mask: BoolArray,
    spacing: tuple[float, float],
    cranial_dir_mm: tuple[float, float],
    *,
    max_tilt_deg: float | None = MAX_TILT_DEG,
) -> VertebraGeometry:
    """Corners and HV = area / mean endplate length (true mean height for a trapezoid)."""
    body, r0, c0 = body_mask(mask)
    n_px = int(np.count_nonzero(body))
    if n_px < 16:
        raise GeometryError(f"body too small ({n_px} pixels)")
    sr, sc = spacing
    e, horizontal = edge_points(body)
    phys = np.stack([(e[:, 0] + r0) * sr, (e[:, 1] + c0) * sc], axis=1)
    cranial = _unit(np.asarray(cranial_dir_mm, dtype=np.float64))
    c = fit_corners(phys, horizontal, spacing, cranial)
    tilt = _tilt(c[0], c[1])
    if max_tilt_deg is not None and abs(tilt) > max_tilt_deg:
        raise GeometryError(f"endplate tilt {tilt:.0f} degrees is beyond {max_tilt_deg:.0f} degrees")
    mean_w_mm = 0.5 * (float(np.hypot(*(c[1] - c[0]))) + float(np.hypot(*(c[3] - c[2]))))
    if mean_w_mm <= 0:
        raise GeometryError("zero endplate length")
    hv_mm = n_px * sr * sc / mean_w_mm
    # px: the height expressed along the body's height direction
    ev = _unit(0.5 * (c[2] + c[3]) - 0.5 * (c[0] + c[1]))
    hv_px = hv_mm * _len_px(ev, spacing)
    corners = (_to_px(c[0], spacing), _to_px(c[1], spacing), _to_px(c[2], spacing), _to_px(c[3], spacing))
    return VertebraGeometry(corners, hv_px, hv_mm, tilt)


def _phys(p: Point, spacing: tuple[float, float]) -> Vec:
    return np.array([p[0] * spacing[0], p[1] * spacing[1]])


def disc_axis(upper: VertebraGeometry, lower: VertebraGeometry, spacing: tuple[float, float]) -> DiscAxis:
    u = [_phys(p, spacing) for p in upper.corners]
    d = [_phys(p, spacing) for p in lower.corners]
    a = (u[2] + d[0]) / 2
    p = (u[3] + d[1]) / 2
    wd_mm = float(np.hypot(*(p - a)))
    return DiscAxis(_to_px(a, spacing), _to_px(p, spacing), _len_px(p - a, spacing), wd_mm, _tilt(a, p))


def _square_fraction_below(x: Vec, ext: tuple[float, float]) -> Vec:
    """Fraction of a pixel's square footprint whose projection on an axis lies below ``x`` (mm from the
    projected centre); ``ext`` are the projected lengths of the pixel's two sides (|e_y| sr, |e_x| sc).
    The projection of a uniform rectangle is the sum of two uniform variables: a trapezoidal density,
    whose distribution function is a sum of clipped quadratic ramps."""
    a, b = max(ext), min(ext)
    if b <= 1e-9 * a:
        return np.clip(x / a + 0.5, 0.0, 1.0)

    def ramp(v: Vec) -> Vec:
        return 0.5 * np.maximum(v, 0.0) ** 2

    h1, h2 = (a + b) / 2, (a - b) / 2
    return (ramp(x + h1) - ramp(x + h2) - ramp(x - h2) + ramp(x - h1)) / (a * b)


def disc_height(disc: BoolArray, axis: DiscAxis, spacing: tuple[float, float]) -> DiscHeight:
    """True mean height of the central 80 %: area of the disc between the cuts at 10 % and 90 % of the
    A->P axis, divided by 0.8 * WD_small (mm; px along the height direction as a diagnostic).

    Pixels are squares (edge to edge: a disc of n whole rows is n * row spacing tall). A pixel cut by a
    10 %/90 % line counts with the part of its square between the cuts, not all-or-nothing by its centre,
    which on coarse grids (0.6-1 mm) would change the region's length by up to a pixel and DH with it."""
    a = _phys(axis.anterior_mid, spacing)
    p = _phys(axis.posterior_mid, spacing)
    wd = axis.wd_small_mm
    if wd <= 0:
        raise GeometryError("zero disc width")
    e = (p - a) / wd
    c = crop(disc, 0)
    if c is None:
        raise GeometryError("disc mask is empty")
    rows, cols = np.nonzero(c.mask)
    rows = rows + c.r0
    cols = cols + c.c0
    # position of each pixel centre along A->P (mm); each pixel counts with the fraction of its square
    # footprint that lies between the cuts, so the region's area is edge to edge on any grid
    s = (rows * spacing[0] - a[0]) * e[0] + (cols * spacing[1] - a[1]) * e[1]
    lo, hi = (0.5 - MU / 2) * wd, (0.5 + MU / 2) * wd
    sel = (s >= lo - spacing[0] - spacing[1]) & (s <= hi + spacing[0] + spacing[1])
    ext = (abs(float(e[0])) * spacing[0], abs(float(e[1])) * spacing[1])
    inside = float(np.sum(_square_fraction_below(hi - s[sel], ext) - _square_fraction_below(lo - s[sel], ext)))
    dh_mm = inside * spacing[0] * spacing[1] / (MU * wd)
    if dh_mm <= 0:
        raise GeometryError("no disc pixels in the central 80 % region")
    n = np.array([e[1], -e[0]])
    return DiscHeight(dh_mm * _len_px(n, spacing), dh_mm)


def wd_big(disc: BoolArray, axis: DiscAxis, spacing: tuple[float, float]) -> DiscWidth:
    """Disc extent (bulge included) along the A-P line, through the disc where it crosses the line."""
    a = _phys(axis.anterior_mid, spacing)
    p = _phys(axis.posterior_mid, spacing)
    centre = ((axis.anterior_mid[0] + axis.posterior_mid[0]) / 2, (axis.anterior_mid[1] + axis.posterior_mid[1]) / 2)
    ch = chord(disc, centre, (float(p[0] - a[0]), float(p[1] - a[1])), spacing)
    if ch is None:
        raise GeometryError("the A-P line does not cross the disc mask")
    if ch.touches_border:
        raise GeometryError("WD_big walk reached the image border")
    return DiscWidth(
        _len_px(np.array([(ch.end[0] - ch.start[0]) * spacing[0], (ch.end[1] - ch.start[1]) * spacing[1]]), spacing),
        ch.length_mm,
    )
