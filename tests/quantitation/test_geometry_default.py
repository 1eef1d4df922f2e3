"""Method ``default`` on synthetic masks with known geometry: DH within 0.2 mm, HDR and DHI within 2 %,
corners within 1 pixel, for rectangles and trapezoids tilted -30..+40 degrees, curved lordosis, and
anisotropic pixel spacing.

Spacings are 0.25-0.45 mm (a 512 grid over a 130-230 mm field of view). A binary mask places a nearly
horizontal endplate only to within half a pixel, so a 0.2 mm bound on DH needs row spacings of about
0.4 mm or finer; on coarser grids the mask itself no longer carries 0.2 mm (the method is not the limit).
"""

from __future__ import annotations

import numpy as np
import pytest

from quantitation import Status, quantify_slice
from quantitation import geometry_default as g
from quantitation import phantom as ph

NAMES = ("L1", "L2", "L3", "L4", "L5", "S1")
TILTS = (-30, -20, -10, 0, 10, 20, 30, 40)
SPACINGS = ((0.4, 0.4), (0.3, 0.45), (0.4, 0.3))


def _corner_errors_px(got, true_mm, spacing) -> np.ndarray:
    return np.hypot(*(np.asarray(got) - true_mm / np.asarray(spacing)).T)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("tilt", TILTS)
@pytest.mark.parametrize("shape", ["rectangle", "trapezoid"])
def test_single_body_corners_and_height(shape: str, tilt: float, spacing: tuple[float, float]) -> None:
    spec = ph.BodySpec(36.0, 36.0 if shape == "rectangle" else 30.0, 25.0, tilt)
    c = ph.body_corners(np.array([0.0, 0.0]), spec)
    c = c - c.min(axis=0) + np.array([8.3, 7.9])
    grid = (int((c[:, 0].max() + 8) / spacing[0]), int((c[:, 1].max() + 8) / spacing[1]))
    mask = ph.rasterise(ph.as_polygon(c), grid, spacing)
    v = g.vertebra(mask, spacing, (-1.0, 0.0), max_tilt_deg=None)
    assert _corner_errors_px(v.corners, c, spacing).max() <= 1.0
    # a horizontal edge on a pixel centre is in or out as a whole row: one pixel of height uncertainty
    assert v.height_mm == pytest.approx(25.0, abs=max(spacing))
    assert v.tilt_deg == pytest.approx(tilt, abs=1.5)


def _check_spine(spine: ph.Spine, tol_dh: float = 0.2) -> None:
    q = quantify_slice(spine.labels, spine.image, spine.spacing)
    assert all(d.status is Status.OK for d in q.discs), [d.reasons for d in q.discs]
    for v in q.vertebrae:
        assert v.status is Status.OK
        assert _corner_errors_px(v.corners, spine.bodies[v.level], spine.spacing).max() <= 1.0, v.level
        assert v.height_mm == pytest.approx(ph.expected_hv(spine.bodies[v.level]), abs=max(spine.spacing))
    for i, d in enumerate(q.discs):
        up, lo = spine.bodies[NAMES[i]], spine.bodies[NAMES[i + 1]]
        e = ph.expected_disc(up, lo, spine.discs[d.level])
        hv_u, hv_l = ph.expected_hv(up), ph.expected_hv(lo)
        dhi = e["dh"] / hv_u if d.level == "L5/S1" else 2 * e["dh"] / (hv_u + hv_l)
        assert d.dh_mm == pytest.approx(e["dh"], abs=tol_dh), d.level
        assert d.wd_small_mm == pytest.approx(e["wd_small"], rel=0.02)
        # the drawn discs have no bulge: WD_big is the A-P chord, i.e. WD_small
        assert d.hdr == pytest.approx(e["dh"] / e["wd_small"], rel=0.02), d.level
        assert d.dhi == pytest.approx(dhi, rel=0.02), d.level
        # pixels are a diagnostic; mm are the unit
        assert d.dh_px is not None and d.dh_px > 0
        a = np.array(d.anterior_mid) * spine.spacing
        assert np.hypot(a[0] - e["a_y"], a[1] - e["a_x"]) < 0.5
        # the height line crosses the disc from its upper to its lower boundary
        (r0, c0), (r1, c1) = d.height_line
        assert r1 > r0
        length = np.hypot((r1 - r0) * spine.spacing[0], (c1 - c0) * spine.spacing[1])
        assert length == pytest.approx(e["dh"], abs=1.0)
        assert d.outline is not None and len(d.outline) >= 4


@pytest.mark.parametrize("spacing", SPACINGS)
def test_curved_lordosis_known_heights(spacing: tuple[float, float]) -> None:
    heights = (6.0, 8.0, 10.0, 12.0, 9.0)
    shape = (int(280 / spacing[0]), int(150 / spacing[1]))
    spine = ph.draw_spine(shape, spacing, disc_heights=heights)
    _check_spine(spine)


@pytest.mark.parametrize("seed", range(6))
def test_random_spines(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spacing = (float(rng.uniform(0.25, 0.4)), float(rng.uniform(0.25, 0.45)))
    t0 = float(rng.uniform(-30, 0))
    tilts = np.minimum(np.cumsum([t0, *rng.uniform(0, 10, 5)]), 40)
    bodies = [
        ph.BodySpec(float(rng.uniform(32, 42)), float(rng.uniform(32, 42)), float(rng.uniform(22, 30)), float(t))
        for t in tilts
    ]
    heights = tuple(float(x) for x in rng.uniform(6, 14, 5))
    spine = ph.draw_spine((int(300 / spacing[0]), int(170 / spacing[1])), spacing, bodies, heights, rng=rng)
    _check_spine(spine)


@pytest.mark.parametrize("s1_height", [26.0, 80.0])  # a body-like S1 and an elongated sacrum
@pytest.mark.parametrize("s1_tilt", [0.0, 10.0, 30.0, 50.0, 65.0])
def test_sacral_endplate_any_tilt(s1_tilt: float, s1_height: float) -> None:
    l5 = min(max(s1_tilt - 15.0, 0.0), 40.0)
    tilts = (-5.0, 0.0, 5.0, 0.5 * l5, l5)
    bodies = [ph.BodySpec(tilt_deg=t) for t in tilts] + [ph.BodySpec(44.0, 30.0, s1_height, s1_tilt)]
    spacing = (0.4, 0.4)
    spine = ph.draw_spine((900, 600), spacing, bodies, (8.0, 9.0, 10.0, 11.0, 10.0))
    q = quantify_slice(spine.labels, spine.image, spacing)
    s1 = q.vertebrae[5]
    assert s1.status is Status.OK
    # superior endplate corners of S1
    err = _corner_errors_px(s1.corners[:2], spine.bodies["S1"][:2], spacing)
    assert err.max() <= 1.0
    l5s1 = q.discs[4]
    if abs(0.5 * (l5 + s1_tilt)) <= 45:
        assert l5s1.status is Status.OK
        e = ph.expected_disc(spine.bodies["L5"], spine.bodies["S1"], spine.discs["L5/S1"])
        assert l5s1.dh_mm == pytest.approx(e["dh"], abs=0.2)


def test_dh_in_mm_is_independent_of_grid() -> None:
    """The same anatomy on a fine isotropic and a coarse anisotropic grid gives the same mm values."""
    heights = (7.0, 8.0, 9.0, 10.0, 11.0)
    a = ph.draw_spine((700, 400), (0.4, 0.4), disc_heights=heights)
    b = ph.draw_spine((760, 700), (0.35, 0.25), disc_heights=heights)
    qa = quantify_slice(a.labels, a.image, a.spacing)
    qb = quantify_slice(b.labels, b.image, b.spacing)
    for da, db in zip(qa.discs, qb.discs, strict=True):
        assert da.dh_mm == pytest.approx(db.dh_mm, abs=0.25)
        assert da.wd_small_mm == pytest.approx(db.wd_small_mm, abs=0.3)


@pytest.mark.parametrize("tilt", TILTS)
@pytest.mark.parametrize("trapezoid", [False, True])
def test_uniformly_tilted_spine(tilt: float, trapezoid: bool) -> None:
    bodies = [ph.BodySpec(38.0, 33.0 if trapezoid else 38.0, 26.0, float(tilt)) for _ in range(6)]
    # at 0 degrees the endplates are pixel rows: half a row (0.15 mm) stays under 2 % of DH >= 8 mm
    spacing = (0.3, 0.4)
    spine = ph.draw_spine((900, 600), spacing, bodies, (8.0, 9.0, 10.0, 11.0, 12.5))
    _check_spine(spine)
