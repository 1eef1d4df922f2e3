"""Each disc is measured independently; bad anatomy gives statuses and reasons, never exceptions."""

from __future__ import annotations

import numpy as np
import pytest

from quantitation import Method, Status, quantify_slice
from quantitation import phantom as ph

SPACING = (0.4, 0.4)


@pytest.fixture(scope="module")
def spine() -> ph.Spine:
    return ph.draw_spine((700, 420), SPACING)


@pytest.mark.parametrize("method", ["default", "bianque2022"])
def test_missing_vertebra_only_hits_its_discs(spine: ph.Spine, method: str) -> None:
    labels = spine.labels.copy()
    labels[labels == 6] = 0  # L3 gone
    q = quantify_slice(labels, spine.image, SPACING, method=method)
    st = {d.level: d for d in q.discs}
    for lvl in ("L2/L3", "L3/L4"):
        assert st[lvl].status is Status.PARTIAL
        assert st[lvl].dh_mm is None and st[lvl].delta_si is not None
        assert any("L3" in r for r in st[lvl].reasons)
        assert st[lvl].height_line is not None  # still drawn from the disc's own axis
    for lvl in ("L1/L2", "L4/L5", "L5/S1"):
        assert st[lvl].dh_mm is not None and st[lvl].delta_si is not None
    assert q.vertebrae[2].status is Status.FAILED


@pytest.mark.parametrize("method", ["default", "bianque2022"])
def test_empty_disc_and_empty_csf(spine: ph.Spine, method: str) -> None:
    labels = spine.labels.copy()
    labels[labels == 7] = 0  # L3/L4 disc gone
    labels[labels == 1] = 0  # no CSF
    q = quantify_slice(labels, spine.image, SPACING, method=method)
    st = {d.level: d for d in q.discs}
    assert st["L3/L4"].status is Status.FAILED and st["L3/L4"].reasons
    for lvl in ("L1/L2", "L2/L3", "L4/L5", "L5/S1"):
        d = st[lvl]
        assert d.status is Status.PARTIAL
        assert d.delta_si is None and d.grade_group is None
        assert any("CSF" in r for r in d.reasons)
        assert d.dh_mm is not None and d.dhi is not None
    assert q.csf_reference is None and any("CSF" in w for w in q.warnings)


def test_walk_reaching_border_loses_only_wd_big() -> None:
    spine = ph.draw_spine((700, 420), SPACING)
    labels = spine.labels.copy()
    # extend the L4/L5 disc to the posterior border along its rows
    rows, cols = np.nonzero(labels == 9)
    for r in np.unique(rows):
        labels[r, cols[rows == r].max() :] = 9
    for method in ("default", "bianque2022"):
        q = quantify_slice(labels, spine.image, SPACING, method=method)
        d = q.discs[3]
        assert d.hdr is None and d.wd_big_mm is None, method
        assert any("border" in r for r in d.reasons), (method, d.reasons)
        assert d.dh_mm is not None and d.status is Status.PARTIAL
        assert all(x.status is Status.OK for x in q.discs if x.level != "L4/L5"), method


def test_tilt_beyond_45_degrees() -> None:
    tilts = (-5.0, 0.0, 5.0, 20.0, 50.0, 55.0)  # L5 beyond 45 degrees
    spine = ph.draw_spine((800, 520), SPACING, [ph.BodySpec(tilt_deg=t) for t in tilts])
    q = quantify_slice(spine.labels, spine.image, SPACING)
    st = {d.level: d for d in q.discs}
    assert all(st[lvl].status is Status.OK for lvl in ("L1/L2", "L2/L3", "L3/L4"))
    assert q.vertebrae[4].status is Status.FAILED and "45 degrees" in q.vertebrae[4].reasons[0]
    for lvl in ("L4/L5", "L5/S1"):
        assert st[lvl].dh_mm is None
        assert any("45 degrees" in r for r in st[lvl].reasons), st[lvl].reasons
        assert st[lvl].delta_si is not None


def test_non_square_anisotropic_and_small_image() -> None:
    spine = ph.draw_spine((900, 330), (0.3, 0.5))
    for method in Method:
        q = quantify_slice(spine.labels, spine.image, (0.3, 0.5), method=method, sex="F", age_years=50)
        assert len(q.discs) == 5 and len(q.vertebrae) == 6
        assert all(d.dh_mm is not None for d in q.discs)
        assert q.pixel_spacing_mm == (0.3, 0.5) and q.sex == "F" and q.age_years == 50.0
        # not a 512 grid: no DH deviation, but DHI/HDR ones with their reference
        kinds = {(x.quantity, x.kind) for x in q.discs[2].deviations}
        assert ("dh", "relative") not in kinds and ("dhi", "z") in kinds and ("hdr", "z") in kinds
        assert any("512" in w for w in q.warnings)


def test_default_deviations_use_bianque2022_values_on_512_grid() -> None:
    spine = ph.draw_spine((512, 512), (0.55, 0.55))
    q = quantify_slice(spine.labels, spine.image, (0.55, 0.55), sex="M")
    qb = quantify_slice(spine.labels, spine.image, (0.55, 0.55), method="bianque2022", sex="M")
    for d, db in zip(q.discs, qb.discs, strict=True):
        dev = {(x.quantity, x.kind): x for x in d.deviations}
        assert dev[("dh", "relative")].measured == pytest.approx(db.dh_px)
        assert dev[("dhi", "z")].measured == pytest.approx(db.dhi)
        assert "bianque2022" in dev[("hdr", "z")].reference
        assert dev[("delta_si", "z")].measured == pytest.approx(d.delta_si)


@pytest.mark.parametrize(
    ("labels", "image", "spacing", "kwargs"),
    [
        (np.zeros((10,), np.uint8), np.zeros((10,), np.uint8), (1, 1), {}),
        (np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint8), (1, 1), {}),
        (np.full((10, 10), 14, np.uint8), np.zeros((10, 10), np.uint8), (1, 1), {}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 11), np.uint8), (1, 1), {}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint16), (1, 1), {}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8), (0, 1), {}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8), 1.0, {}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8), (1, 1), {"method": "magic"}),
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8), (1, 1), {"sex": "male"}),
        ([[0]], np.zeros((1, 1), np.uint8), (1, 1), {}),
    ],
)
def test_wrong_inputs_raise_value_error(labels, image, spacing, kwargs) -> None:
    with pytest.raises(ValueError):
        quantify_slice(labels, image, spacing, **kwargs)


def test_empty_label_map_gives_five_failed_discs() -> None:
    q = quantify_slice(np.zeros((64, 80), np.uint8), np.zeros((64, 80), np.uint8), (1.0, 1.0))
    assert [d.status for d in q.discs] == [Status.FAILED] * 5
    assert all(d.reasons for d in q.discs)
    assert [v.status for v in q.vertebrae] == [Status.FAILED] * 6


def test_bgr_image_is_converted() -> None:
    spine = ph.draw_spine((700, 420), SPACING)
    bgr = np.repeat(spine.image[:, :, None], 3, axis=2)
    a = quantify_slice(spine.labels, bgr, SPACING)
    b = quantify_slice(spine.labels, spine.image, SPACING)
    assert [d.delta_si for d in a.discs] == [d.delta_si for d in b.discs]


def test_disc_axis_tilt_beyond_45_degrees() -> None:
    """A steep sacrum is measured (S1 has no tilt limit) but an L5/S1 axis beyond 45 degrees is refused."""
    tilts = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    spine = ph.draw_spine((900, 600), SPACING, [ph.BodySpec(tilt_deg=t) for t in tilts], (8, 9, 10, 11, 14))
    q = quantify_slice(spine.labels, spine.image, SPACING)
    assert q.vertebrae[5].status is Status.OK  # S1 found at 80 degrees
    d = q.discs[4]
    assert d.dh_mm is None and any("disc axis tilt" in r for r in d.reasons), d.reasons
    assert d.delta_si is not None and d.status is Status.PARTIAL
    assert all(x.status is Status.OK for x in q.discs[:4])


@pytest.mark.parametrize("method", ["default", "bianque2022"])
def test_outline_and_height_line_lie_on_the_disc(spine: ph.Spine, method: str) -> None:
    q = quantify_slice(spine.labels, spine.image, SPACING, method=method)
    for d in q.discs:
        disc = spine.labels == {"L1/L2": 3, "L2/L3": 5, "L3/L4": 7, "L4/L5": 9, "L5/S1": 11}[d.level]
        pts = np.rint(np.array(d.outline)).astype(int)
        assert disc[pts[:, 0], pts[:, 1]].all()  # contour points are disc pixels
        (r0, c0), (r1, c1) = d.height_line
        mid = (int(round((r0 + r1) / 2)), int(round((c0 + c1) / 2)))
        assert disc[mid] and r0 < r1  # through the disc, upper end first


@pytest.mark.parametrize("kind", ["rectangles", "noise", "lines", "ellipses"])
def test_random_label_maps_never_raise(kind: str) -> None:
    """Garbage anatomy (random blobs, noise, lines, ellipses, any spacing): statuses, no exceptions."""
    import cv2

    rng = np.random.default_rng(hash(kind) % 2**32)
    for it in range(15):
        h, w = int(rng.integers(8, 160)), int(rng.integers(8, 160))
        labels = np.zeros((h, w), np.uint8)
        for cls in range(1, 14):
            if rng.random() < 0.3:
                continue
            if kind == "rectangles":
                r0, c0 = rng.integers(0, h), rng.integers(0, w)
                labels[r0 : r0 + rng.integers(1, 40), c0 : c0 + rng.integers(1, 40)] = cls
            elif kind == "noise":
                labels[rng.random((h, w)) < 0.02] = cls
            elif kind == "lines":
                labels[rng.integers(0, h), :] = cls
            else:
                img = np.zeros((h, w), np.uint8)
                centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                axes = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
                cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
                labels[img > 0] = cls
        image = rng.integers(0, 256, (h, w)).astype(np.uint8)
        spacing = (float(rng.uniform(0.2, 2)), float(rng.uniform(0.2, 2)))
        for method in ("default", "bianque2022"):
            q = quantify_slice(labels, image, spacing, method=method, sex=("F", "M", None)[it % 3])
            assert len(q.discs) == 5 and len(q.vertebrae) == 6
            for d in q.discs:
                assert d.status is Status.OK or d.reasons


@pytest.mark.parametrize("method", ["default", "bianque2022"])
def test_implausibly_short_body_is_flagged_with_the_dhi_that_uses_it(method: str) -> None:
    """A body much shorter than the other lumbar bodies (half-segmented, or a compression fracture) keeps its
    value but says so, and so do the DHIs computed from it; normal bodies carry no such note."""
    normal = quantify_slice(*_spine_parts(ph.draw_spine((700, 420), SPACING)), method=method)
    assert all(not v.reasons for v in normal.vertebrae)
    assert all(not any("implausible" in r for r in d.reasons) for d in normal.discs)
    bodies = [ph.BodySpec(tilt_deg=t) for t in ph.LUMBAR_LORDOSIS]
    bodies[1] = ph.BodySpec(height=16.0, tilt_deg=bodies[1].tilt_deg)  # L2 at 62 % of 26 mm
    q = quantify_slice(*_spine_parts(ph.draw_spine((700, 420), SPACING, bodies=bodies)), method=method)
    by_level = {v.level: v for v in q.vertebrae}
    assert by_level["L2"].status is Status.OK and by_level["L2"].height_mm < 20.0  # value kept
    assert any("compression fracture" in r for r in by_level["L2"].reasons)
    assert all(not by_level[k].reasons for k in ("L1", "L3", "L4", "L5", "S1"))
    flagged = {d.level for d in q.discs if any("height of L2" in r for r in d.reasons)}
    assert flagged == {"L1/L2", "L2/L3"}


def _spine_parts(spine: ph.Spine) -> tuple:
    return spine.labels, spine.image, SPACING
