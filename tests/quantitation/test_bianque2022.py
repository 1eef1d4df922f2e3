"""Method ``bianque2022`` reproduces the original definitions and the spec's worked numbers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from quantitation import Method, Status, quantify_slice
from quantitation import geometry_bianque2022 as g
from quantitation import phantom as ph
from quantitation import signal_intensity as sig

SP = (1.0, 1.0)


def _box(shape=(512, 512), top_left=(200, 200), size_wh=(56, 40)) -> np.ndarray:
    img = np.zeros(shape, np.uint8)
    (r, c), (w, h) = top_left, size_wh
    cv2.rectangle(img, (c, r), (c + w, r + h), 1, thickness=-1)
    return img.astype(bool)


def test_56x40_box_hv_46_7_with_corners_inset() -> None:
    m = _box()
    v = g.vertebra(m, SP)
    assert round(v.height_px, 1) == 46.7  # true height 40: Shi-Tomasi corners sit ~3 px inside
    (r0, c0), (r1, c1), (r2, c2), (r3, c3) = v.corners
    assert (r0, c0) == (203.0, 203.0) and (r3, c3) == (237.0, 253.0)


def _stack(width: int, disc_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    up = np.zeros((512, 512), bool)
    up[150:190, 200 : 200 + width] = True
    disc = np.zeros_like(up)
    disc[190 : 190 + disc_rows, 200 : 200 + width] = True
    lo = np.zeros_like(up)
    lo[190 + disc_rows : 230 + disc_rows, 200 : 200 + width] = True
    return up, disc, lo


def test_12_pixel_disc_gives_dh_9_51() -> None:
    up, disc, lo = _stack(60, 12)
    axis = g.disc_axis(g.vertebra(up, SP), g.vertebra(lo, SP), SP)
    assert axis.wd_small_px == 53.0
    assert g.central_area_px(disc, axis) == 504
    dh = g.disc_height(disc, axis, SP)
    assert dh.dh_px == pytest.approx(504 / 53)
    assert round(dh.dh_px, 2) == 9.51  # about 0.8 x the true 12 px (spec 5.5)


def test_full_slice_bianque2022_values() -> None:
    up, disc, lo = _stack(60, 12)
    labels = np.zeros((512, 512), np.uint8)
    labels[up] = 10  # L5
    labels[disc] = 11  # L5/S1
    labels[lo] = 12  # S1 (flat: the S1 rule mis-pairs a flat sacrum, spec 5.1.5)
    labels[150:260, 280:290] = 1
    img = np.full((512, 512), 60, np.uint8)
    img[labels == 1] = 163
    rng = np.random.default_rng(0)
    vals = np.where(rng.random(int(disc.sum())) < 0.6, 120, 102).astype(np.uint8)
    img[disc] = vals
    q = quantify_slice(labels, img, SP, method="bianque2022", sex="M")
    assert q.method is Method.BIANQUE2022
    assert q.csf_reference == 163.0
    l5s1 = q.discs[4]
    assert l5s1.method is Method.BIANQUE2022
    assert l5s1.delta_si == pytest.approx(18 * 255 / 163)
    assert l5s1.grade_group == 5
    # other discs are not segmented: failed with a reason, this one still measured
    assert all(d.status is Status.FAILED and d.reasons for d in q.discs[:4])
    assert {(x.quantity, x.kind) for x in l5s1.deviations} >= {("delta_si", "z")}


@pytest.mark.parametrize("tilt", [-30, -20, -10, 0, 10, 20, 30, 40])
def test_lumbar_rule_pairs_corners_for_minus30_to_40(tilt: float) -> None:
    c = ph.body_corners(np.array([0.0, 0.0]), ph.BodySpec(56.0, 56.0, 40.0, float(tilt)))
    c = c - c.min(axis=0) + 100
    m = ph.rasterise(ph.as_polygon(c), (400, 400), SP)
    v = g.vertebra(m, SP)
    got = np.array(v.corners)
    assert np.hypot(*(got - c).T).max() < 8  # each slot next to its true corner (inset ~3-5 px)


def test_s1_rule_mispairs_flat_sacrum_and_pairs_tilted_one() -> None:
    def s1(tilt: float) -> tuple[np.ndarray, np.ndarray]:
        c = ph.body_corners(np.array([0.0, 0.0]), ph.BodySpec(56.0, 56.0, 40.0, tilt))
        c = c - c.min(axis=0) + 100
        return c, ph.rasterise(ph.as_polygon(c), (400, 400), SP)

    c, m = s1(0.0)
    v = g.vertebra(m, SP, s1_rule=True)
    assert np.hypot(*(np.array(v.corners) - c).T).max() > 20  # the short sides become "endplates"
    c, m = s1(30.0)
    v = g.vertebra(m, SP, s1_rule=True)
    assert np.hypot(*(np.array(v.corners) - c).T).max() < 8


def test_original_signal_quirks() -> None:
    # mode can be 255 while the histogram peak drops 255 (OpenCV range [0, 255))
    vals = np.array([255] * 10 + [100] * 8 + [50] * 3, np.uint8)
    p = sig.original_peaks(vals)
    assert p.main == 255
    # p1 = 100 (255 dropped); p2 = argmax |k - 95| * hist -> 50 (45*3=135) vs 100 (5*8=40)
    assert p.second == 50
    # ties for the mode go to the value met first
    assert sig.original_mode(np.array([7, 9, 9, 7], np.uint8)) == 7
    assert sig.original_mode(np.array([9, 7, 9, 7], np.uint8)) == 9


def test_fewer_than_four_corners_is_a_reason_not_an_exception() -> None:
    labels = np.zeros((128, 128), np.uint8)
    labels[40:44, 40:44] = 4  # L2 too small for four corners 21 px apart
    labels[30:60, 60:64] = 1
    img = np.full((128, 128), 80, np.uint8)
    q = quantify_slice(labels, img, SP, method="bianque2022")
    l2 = q.vertebrae[1]
    assert l2.status is Status.FAILED
    assert any("fewer than four corners" in r for r in l2.reasons)


def test_public_api_reproduces_dh_9_51_and_its_ratios() -> None:
    up, disc, lo = _stack(60, 12)
    labels = np.zeros((512, 512), np.uint8)
    labels[up], labels[disc], labels[lo] = 6, 7, 8  # L3, L3/L4, L4
    labels[150:260, 280:290] = 1
    img = np.full((512, 512), 60, np.uint8)
    img[labels == 1] = 200
    q = quantify_slice(labels, img, (0.5, 0.5), method=Method.BIANQUE2022, sex="F")
    d = q.discs[2]
    assert d.dh_px == pytest.approx(504 / 53)
    assert d.dh_mm == pytest.approx(504 / 53 * 0.5)
    hv = q.vertebrae[2].height_px
    assert hv == pytest.approx(2400 / 53)  # 60x40 box, corners 53 apart
    assert d.dhi == pytest.approx(2 * (504 / 53) / (hv + q.vertebrae[3].height_px))
    assert d.hdr == pytest.approx((504 / 53) / 59)  # walk edges: columns 200 .. 259
    dev = {(x.quantity, x.kind): x for x in d.deviations}
    assert dev[("dh", "relative")].value == pytest.approx((504 / 53) / 16.15 - 1)  # female L3/L4
