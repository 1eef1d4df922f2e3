"""Synthetic lumbar slices with known geometry (for tests and benchmarks; pure NumPy).

Structures are convex polygons in physical coordinates (y, x) in mm, y head->feet, x anterior->posterior;
a pixel belongs to a polygon when its centre (row * row_spacing, col * col_spacing) lies inside, so the
rasterised areas are unbiased. The analytic helpers give the expected DH / HV / corners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from quantitation import labels as lab

Poly = NDArray[np.float64]  # (n, 2) array of (y, x) mm, counter- or clockwise, convex


@dataclass(frozen=True)
class BodySpec:
    """One vertebral body: trapezoid with superior/inferior endplate lengths, height and tilt (degrees,
    positive = anterior corner lower)."""

    width_sup: float = 36.0
    width_inf: float = 36.0
    height: float = 26.0
    tilt_deg: float = 0.0


@dataclass(frozen=True)
class Spine:
    """The drawn phantom: label map, image, spacing and the true polygons (mm)."""

    labels: NDArray[np.uint8]
    image: NDArray[np.uint8]
    spacing: tuple[float, float]
    bodies: dict[str, Poly]  # "L1".."S1": corners [ant-sup, post-sup, ant-inf, post-inf]
    discs: dict[str, Poly]  # "L1/L2"..: polygon [U ant-inf, U post-inf, D post-sup, D ant-sup]
    extra: dict[str, Poly] = field(default_factory=dict)


def _frame(tilt_deg: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = math.radians(tilt_deg)
    eu = np.array([-math.sin(t), math.cos(t)])  # along the endplate, towards posterior
    ev = np.array([math.cos(t), math.sin(t)])  # caudal normal
    return eu, ev


def body_corners(sup_centre: NDArray[np.float64], spec: BodySpec) -> Poly:
    """[ant-sup, post-sup, ant-inf, post-inf] of a trapezoid body whose superior endplate centre is given."""
    eu, ev = _frame(spec.tilt_deg)
    inf_centre = sup_centre + spec.height * ev
    return np.array(
        [
            sup_centre - spec.width_sup / 2 * eu,
            sup_centre + spec.width_sup / 2 * eu,
            inf_centre - spec.width_inf / 2 * eu,
            inf_centre + spec.width_inf / 2 * eu,
        ]
    )


def as_polygon(corners: Poly) -> Poly:
    """Corner order [as, ps, ai, pi] -> polygon order [as, ps, pi, ai]."""
    return corners[[0, 1, 3, 2]]


def rasterise(poly: Poly, shape: tuple[int, int], spacing: tuple[float, float]) -> NDArray[np.bool_]:
    """Pixels whose centre lies inside the convex polygon (or on its boundary)."""
    sr, sc = spacing
    out = np.zeros(shape, dtype=bool)
    r0 = max(int(math.floor(poly[:, 0].min() / sr)) - 1, 0)
    r1 = min(int(math.ceil(poly[:, 0].max() / sr)) + 2, shape[0])
    c0 = max(int(math.floor(poly[:, 1].min() / sc)) - 1, 0)
    c1 = min(int(math.ceil(poly[:, 1].max() / sc)) + 2, shape[1])
    if r0 >= r1 or c0 >= c1:
        return out
    yy, xx = np.meshgrid(np.arange(r0, r1) * sr, np.arange(c0, c1) * sc, indexing="ij")
    n = len(poly)
    signs = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        signs.append((b[1] - a[1]) * (yy - a[0]) - (b[0] - a[0]) * (xx - a[1]))
    s = np.stack(signs)
    inside = np.all(s >= -1e-9, axis=0) | np.all(s <= 1e-9, axis=0)
    out[r0:r1, c0:c1] = inside
    return out


def polygon_area(poly: Poly) -> float:
    y, x = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def clip_halfplane(poly: Poly, point: NDArray[np.float64], normal: NDArray[np.float64]) -> Poly:
    """Keep the part of ``poly`` where (p - point) . normal >= 0 (Sutherland-Hodgman)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        da, db = float((a - point) @ normal), float((b - point) @ normal)
        if da >= 0:
            out.append(a)
        if (da >= 0) != (db >= 0):
            t = da / (da - db)
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 2))


def expected_disc(upper: Poly, lower: Poly, disc: Poly, mu: float = 0.8) -> dict[str, float]:
    """True DH (mean height of the central ``mu`` of the A-P axis), WD_small, A, P (mm)."""
    a = (upper[2] + lower[0]) / 2
    p = (upper[3] + lower[1]) / 2
    wd = float(np.hypot(*(p - a)))
    e = (p - a) / wd
    lo = a + (0.5 - mu / 2) * wd * e
    hi = a + (0.5 + mu / 2) * wd * e
    part = clip_halfplane(clip_halfplane(disc, lo, e), hi, -e)
    area = polygon_area(part) if len(part) >= 3 else 0.0
    return {"dh": area / (mu * wd), "wd_small": wd, "a_y": a[0], "a_x": a[1], "p_y": p[0], "p_x": p[1]}


def expected_hv(corners: Poly) -> float:
    """Area / mean endplate length = the trapezoid's height."""
    w = 0.5 * (np.hypot(*(corners[1] - corners[0])) + np.hypot(*(corners[3] - corners[2])))
    return polygon_area(as_polygon(corners)) / float(w)


LUMBAR_LORDOSIS: tuple[float, ...] = (-12.0, -5.0, 3.0, 12.0, 22.0, 35.0)  # L1..S1 tilts, degrees


def draw_spine(
    shape: tuple[int, int] = (512, 512),
    spacing: tuple[float, float] = (0.6, 0.6),
    bodies: Sequence[BodySpec] | None = None,
    disc_heights: Sequence[float] = (8.0, 9.0, 10.0, 11.0, 10.0),
    *,
    origin: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
    disc_peaks: tuple[float, float] = (190.0, 90.0),
    disc_sd: float = 6.0,
    csf_level: float = 220.0,
    fat_level: float = 170.0,
) -> Spine:
    """Draw L1-L5 and S1 bodies, five discs, a CSF column and presacral fat.

    The disc grey values are drawn from two normal components (nucleus ``disc_peaks[0]`` in the centre,
    annulus ``disc_peaks[1]`` towards the ends); ``disc_sd`` their SD.
    """
    if bodies is None:
        bodies = [BodySpec(tilt_deg=t) for t in LUMBAR_LORDOSIS]
    if len(bodies) != 6 or len(disc_heights) != 5:
        raise ValueError("need six bodies (L1..S1) and five disc heights")
    rng = rng or np.random.default_rng(0)
    names = ("L1", "L2", "L3", "L4", "L5", "S1")
    corners: list[Poly] = []
    centre = np.array([0.0, 0.0])
    for i, spec in enumerate(bodies):
        c = body_corners(centre, spec)
        corners.append(c)
        if i < 5:
            inf_centre = (c[2] + c[3]) / 2
            _, ev_u = _frame(spec.tilt_deg)
            _, ev_d = _frame(bodies[i + 1].tilt_deg)
            ev = (ev_u + ev_d) / np.hypot(*(ev_u + ev_d))
            centre = inf_centre + disc_heights[i] * ev
    allpts = np.concatenate(corners)
    if origin is None:
        mid = (allpts.min(axis=0) + allpts.max(axis=0)) / 2
        target = np.array([shape[0] * spacing[0] / 2, shape[1] * spacing[1] / 2])
        shift = target - mid
    else:
        shift = np.asarray(origin) - corners[0][0]
    corners = [c + shift for c in corners]
    body_polys = dict(zip(names, corners, strict=True))
    disc_polys = {
        lvl: np.array([corners[i][2], corners[i][3], corners[i + 1][1], corners[i + 1][0]])
        for i, lvl in enumerate(lab.DISC_CLASS)
    }
    labels = np.zeros(shape, dtype=np.uint8)
    image = np.full(shape, 25.0)
    # CSF: a band behind the posterior walls, 4-12 mm behind them
    extra: dict[str, Poly] = {}
    for i in range(5):
        top = corners[i][1]
        bot = corners[i + 1][1]
        eu, _ = _frame(bodies[i].tilt_deg)
        eu2, _ = _frame(bodies[i + 1].tilt_deg)
        poly = np.array([top + 3 * eu, top + 12 * eu, bot + 12 * eu2, bot + 3 * eu2])
        extra[f"csf{i}"] = poly
        m = rasterise(poly, shape, spacing)
        labels[m] = lab.CSF
        image[m] = csf_level + rng.normal(0, 5, size=int(m.sum()))
    # fat: a box in front of S1
    s1 = corners[5]
    eu, ev = _frame(bodies[5].tilt_deg)
    fat_poly = np.array([s1[0] - 16 * eu + 4 * ev, s1[0] - 4 * eu + 4 * ev, s1[0] - 4 * eu + 20 * ev, s1[0] - 16 * eu + 20 * ev])
    extra["fat"] = fat_poly
    m = rasterise(fat_poly, shape, spacing)
    labels[m] = lab.FAT
    image[m] = fat_level + rng.normal(0, 5, size=int(m.sum()))
    for name, c in body_polys.items():
        m = rasterise(as_polygon(c), shape, spacing)
        labels[m] = lab.VERTEBRA_CLASS[name]
        image[m] = 70 + rng.normal(0, 5, size=int(m.sum()))
    for lvl, poly in disc_polys.items():
        m = rasterise(poly, shape, spacing)
        labels[m] = lab.DISC_CLASS[lvl]
        rows, cols = np.nonzero(m)
        # nucleus: the middle 50 % along the disc's long axis
        a = (poly[0] + poly[3]) / 2
        p = (poly[1] + poly[2]) / 2
        e = (p - a) / np.hypot(*(p - a))
        t = ((rows * spacing[0] - a[0]) * e[0] + (cols * spacing[1] - a[1]) * e[1]) / np.hypot(*(p - a))
        nucleus = (t > 0.25) & (t < 0.75)
        vals = np.where(nucleus, disc_peaks[0], disc_peaks[1]) + rng.normal(0, disc_sd, size=rows.size)
        image[rows, cols] = vals
    image8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Spine(labels, image8, spacing, body_polys, disc_polys, extra)
