"""Method ``default`` on coarse pixels (0.6-1.0 mm, the phantom's and a typical clinical sagittal grid).

Lengths are edge to edge: a pixel is a square of side ``spacing`` centred on its grid point, so a disc
mask of n rows is n * row_spacing tall (not (n - 1) * row_spacing, the distance between the centres of
its first and last rows), a body of k rows is k * row_spacing tall and a run of m columns is
m * col_spacing wide. On tilted anatomy the staircase of a rasterised endplate averages out, so the
drawn (analytic) disc height is recovered within 0.2 mm even on 1 mm pixels; on an endplate within a
few degrees of a pixel row the mask itself only places it to within half a pixel (see
test_geometry_default.py), so those grids are checked against the mask's own height instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantitation import Status, quantify_slice
from quantitation import labels as lab
from quantitation import phantom as ph

NAMES = ("L1", "L2", "L3", "L4", "L5", "S1")
COARSE = ((0.6, 0.6), (0.8, 0.8), (1.0, 1.0), (0.6, 0.9), (0.9, 0.6))


def _stacked_rectangles(
    body_rows: tuple[int, ...], disc_rows: tuple[int, ...], width_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bodies and discs of whole pixels, stacked head to feet, a CSF column behind."""
    shape = (sum(body_rows) + sum(disc_rows) + 40, width_cols + 60)
    labels = np.zeros(shape, np.uint8)
    c0, c1 = 20, 20 + width_cols
    top = 20
    for k, name in enumerate(NAMES):
        labels[top : top + body_rows[k], c0:c1] = lab.VERTEBRA_CLASS[name]
        top += body_rows[k]
        if k < 5:
            labels[top : top + disc_rows[k], c0:c1] = lab.DISC_CLASS[tuple(lab.DISC_CLASS)[k]]
            top += disc_rows[k]
    labels[10:top, c1 + 4 : c1 + 14] = lab.CSF
    image = np.full(shape, 40, np.uint8)
    image[labels == lab.CSF] = 230
    disc = np.isin(labels, list(lab.DISC_CLASS.values()))
    # two grey levels in each disc so that ΔSI is defined
    image[disc] = np.where(np.indices(shape)[1][disc] % 2 == 0, 180, 90)
    return labels, image


@pytest.mark.parametrize("spacing", COARSE)
def test_rectangles_of_whole_pixels_measure_edge_to_edge(spacing: tuple[float, float]) -> None:
    sr, sc = spacing
    body_rows = (30, 31, 33, 32, 34, 36)
    disc_rows = (7, 9, 10, 12, 11)
    width = 42
    labels, image = _stacked_rectangles(body_rows, disc_rows, width)
    q = quantify_slice(labels, image, spacing)
    assert all(v.status is Status.OK for v in q.vertebrae), [v.reasons for v in q.vertebrae]
    for k, v in enumerate(q.vertebrae):
        assert v.height_mm == pytest.approx(body_rows[k] * sr, abs=1e-6), v.level
    for k, d in enumerate(q.discs):
        assert d.status is Status.OK, d.reasons
        dh = disc_rows[k] * sr
        assert d.dh_mm == pytest.approx(dh, abs=1e-6), (d.level, d.dh_mm, dh, (disc_rows[k] - 1) * sr)
        assert d.wd_small_mm == pytest.approx(width * sc, abs=1e-6), d.level
        # WD_big is a sampled chord (0.25-pixel steps): edge to edge within a quarter pixel
        assert d.wd_big_mm == pytest.approx(width * sc, abs=0.25 * sc), d.level
        assert d.hdr == pytest.approx(dh / (width * sc), rel=0.01), d.level
        hv_u, hv_l = body_rows[k] * sr, body_rows[k + 1] * sr
        dhi = dh / hv_u if d.level == "L5/S1" else 2 * dh / (hv_u + hv_l)
        assert d.dhi == pytest.approx(dhi, rel=1e-6), d.level


@pytest.mark.parametrize("spacing", COARSE)
@pytest.mark.parametrize("tilt", [-30, -20, -10, 10, 20, 30, 40])
def test_tilted_spine_on_coarse_pixels_recovers_the_drawn_heights(tilt: float, spacing: tuple[float, float]) -> None:
    """Bodies and discs drawn in mm and rasterised by pixel centre: DH within 0.2 mm of the drawn mean
    height, DHI/HDR within 2 %, corners within 1 pixel."""
    bodies = [ph.BodySpec(38.0, 35.0, 26.0, float(tilt)) for _ in range(6)]
    heights = (7.3, 8.6, 9.9, 11.2, 10.4)
    shape = (int(320 / spacing[0]), int(260 / spacing[1]))
    spine = ph.draw_spine(shape, spacing, bodies, heights)
    q = quantify_slice(spine.labels, spine.image, spacing)
    for v in q.vertebrae:
        assert v.status is Status.OK, v.reasons
        err = np.hypot(*(np.asarray(v.corners) - spine.bodies[v.level] / np.asarray(spacing)).T)
        assert err.max() <= 1.0, v.level
    for i, d in enumerate(q.discs):
        assert d.status is Status.OK, d.reasons
        up, lo = spine.bodies[NAMES[i]], spine.bodies[NAMES[i + 1]]
        e = ph.expected_disc(up, lo, spine.discs[d.level])
        hv_u, hv_l = ph.expected_hv(up), ph.expected_hv(lo)
        dhi = e["dh"] / hv_u if d.level == "L5/S1" else 2 * e["dh"] / (hv_u + hv_l)
        assert d.dh_mm == pytest.approx(e["dh"], abs=0.2), d.level
        assert d.wd_small_mm == pytest.approx(e["wd_small"], rel=0.02), d.level
        assert d.hdr == pytest.approx(e["dh"] / e["wd_small"], rel=0.02), d.level
        assert d.dhi == pytest.approx(dhi, rel=0.02), d.level


@pytest.mark.parametrize("spacing", COARSE)
@pytest.mark.parametrize("seed", range(3))
def test_coarse_dh_equals_the_masks_own_central_height(seed: int, spacing: tuple[float, float]) -> None:
    """Random lordotic spines (endplates may lie near a pixel row): DH equals the mean central height the
    mask itself holds (disc pixels whose centres lie in the central 80 % of the drawn A-P axis, times the
    pixel area, over 0.8 * WD) within 0.2 mm, and the drawn height within one row spacing."""
    rng = np.random.default_rng(100 + seed)
    t0 = float(rng.uniform(-25, -5))
    tilts = np.minimum(np.cumsum([t0, *rng.uniform(2, 10, 5)]), 40)
    bodies = [ph.BodySpec(float(rng.uniform(33, 42)), float(rng.uniform(33, 42)), float(rng.uniform(23, 29)), float(t))
              for t in tilts]
    heights = tuple(float(x) for x in rng.uniform(6, 13, 5))
    spine = ph.draw_spine((int(320 / spacing[0]), int(220 / spacing[1])), spacing, bodies, heights, rng=rng)
    q = quantify_slice(spine.labels, spine.image, spacing)
    for i, d in enumerate(q.discs):
        assert d.status is Status.OK, d.reasons
        e = ph.expected_disc(spine.bodies[NAMES[i]], spine.bodies[NAMES[i + 1]], spine.discs[d.level])
        a = np.array([e["a_y"], e["a_x"]])
        axis = np.array([e["p_y"], e["p_x"]]) - a
        rows, cols = np.nonzero(spine.labels == lab.DISC_CLASS[d.level])
        t = ((rows * spacing[0] - a[0]) * axis[0] + (cols * spacing[1] - a[1]) * axis[1]) / (axis @ axis)
        own = np.count_nonzero((t >= 0.1) & (t <= 0.9)) * spacing[0] * spacing[1] / (0.8 * e["wd_small"])
        assert d.dh_mm == pytest.approx(own, abs=0.2), (d.level, d.dh_mm, own, e["dh"])
        assert d.dh_mm == pytest.approx(e["dh"], abs=spacing[0]), (d.level, d.dh_mm, e["dh"])
