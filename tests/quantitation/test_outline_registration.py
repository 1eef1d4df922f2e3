"""Outline registration (quantitation/outline_registration.py) on drawn discs with a known boundary line."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from quantitation import signal_intensity as sig
from quantitation.outline_registration import (
    REGISTRATION_REACH_PX,
    disc_halves,
    register_outline,
    signed_steps,
)
from quantitation.quantify import _disc_signal
from quantitation.results import Method

NUCLEUS, ANNULUS, LINE, MARROW = 190, 90, 15, 130


def _drawn_disc(seed: int = 0, tilt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A 64 x 96 grid: an elliptic disc (semi-axes 9 x 30 px, bright nucleus in its inner half, annulus
    around it), a dark 2 px line just outside it (the endplates) and marrow beyond, with noise of SD 4."""
    r, c = np.indices((64, 96)).astype(np.float64)
    t = np.deg2rad(tilt_deg)
    u = (c - 48) * np.cos(t) + (r - 32) * np.sin(t)
    v = -(c - 48) * np.sin(t) + (r - 32) * np.cos(t)
    rho = np.hypot(u / 30.0, v / 9.0)
    disc = rho <= 1.0
    image = np.full(r.shape, float(MARROW))
    image[ndimage.binary_dilation(disc, iterations=2) & ~disc] = LINE
    image[disc] = ANNULUS
    image[rho <= 0.55] = NUCLEUS
    image += np.random.default_rng(seed).normal(0, 4, r.shape)
    return np.clip(np.rint(image), 1, 254).astype(np.uint8), disc


def _difference(image: np.ndarray, mask: np.ndarray, allowed: np.ndarray | None = None) -> float:
    return sig.registered_disc_peaks(image, mask, allowed).difference


def test_signed_steps_are_the_morphological_family() -> None:
    """The mask grown or shrunk by k 4-connected steps is exactly the pixels with steps <= k."""
    _, disc = _drawn_disc()
    steps = signed_steps(disc)
    assert np.array_equal(steps <= 0, disc)
    grown, shrunk = disc.copy(), disc.copy()
    for k in range(1, 4):
        grown, shrunk = ndimage.binary_dilation(grown), ndimage.binary_erosion(shrunk)
        assert np.array_equal(steps <= k, grown)
        assert np.array_equal(steps <= -k, shrunk)


@pytest.mark.parametrize("tilt", [0.0, 25.0, -40.0])
def test_a_mask_one_or_two_pixels_off_reads_the_same_disc(tilt: float) -> None:
    """Both halves move to the dark line (its outer ring: dark, with marrow outside), so the disc drawn too
    small or too large by one or two pixels, or shifted by one, is read on the same pixels and gives the same
    peak difference. (Two clean drawn populations are stable read on the mask as drawn too; the real discs
    that were not are in test_real_data_stability.py.)"""
    image, disc = _drawn_disc(1, tilt)
    outline = register_outline(image, disc)
    assert outline.offsets == pytest.approx((2.0, 2.0), abs=0.3)  # the line's outer ring is 2 steps out
    base = _difference(image, disc)
    assert base == pytest.approx(NUCLEUS - ANNULUS, abs=5)  # the line is the region's rim: little weight
    variants = [ndimage.binary_erosion(disc), ndimage.binary_dilation(disc),
                ndimage.binary_erosion(disc, iterations=2), ndimage.binary_dilation(disc, iterations=2),
                np.roll(disc, 1, axis=0), np.roll(disc, -1, axis=1)]
    changes = [abs(_difference(image, m) - base) for m in variants]
    assert max(changes) <= 1.0, changes
    for m in variants[:4]:  # grown or shrunk: exactly the same region
        assert np.abs(register_outline(image, m).membership - outline.membership).sum() <= 0.02 * disc.sum()


def test_a_dark_mid_height_line_is_not_taken_for_the_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """An intranuclear cleft (a dark line along the middle of the nucleus, common in adult discs) is dark with
    brighter tissue outside it, like the boundary. On a thin disc (10 px) it pulls a half's offset inward
    unless the innermost rings are left out (``CORE_RINGS``)."""
    import quantitation.outline_registration as reg

    r, c = np.indices((48, 96)).astype(np.float64)
    rho = np.hypot((c - 48) / 30.0, (r - 24) / 5.0)
    disc = rho <= 1.0
    image = np.full(r.shape, float(MARROW))
    image[ndimage.binary_dilation(disc, iterations=2) & ~disc] = LINE
    image[disc] = ANNULUS
    image[rho <= 0.6] = NUCLEUS
    image[(np.abs(r - 24) <= 0.5) & (rho <= 0.8)] = 20  # the cleft
    image = np.clip(np.rint(image + np.random.default_rng(0).normal(0, 4, r.shape)), 1, 254).astype(np.uint8)
    assert register_outline(image, disc).offsets == pytest.approx((2.0, 2.0), abs=0.05)
    monkeypatch.setattr(reg, "CORE_RINGS", 0)
    assert min(register_outline(image, disc).offsets) < 1.0


def test_halves_split_the_disc_along_its_long_axis() -> None:
    _, disc = _drawn_disc(0, 30.0)
    half = disc_halves(disc)
    rows, cols = np.nonzero(disc)
    # the two halves hold about equal parts of the disc, and the cranial half (False) lies above
    assert abs(int(half[disc].sum()) - int((~half)[disc].sum())) <= 0.1 * disc.sum()
    assert rows[~half[disc]].mean() < rows[half[disc]].mean()


def test_the_outline_moves_at_most_the_reach_and_not_where_it_may_not_grow() -> None:
    """A disc with no boundary line (uniform disc in uniform surroundings) stays within the reach; pixels
    outside ``allowed`` never join the disc and take no part in the ring levels."""
    rng = np.random.default_rng(2)
    image = np.clip(rng.normal(100, 4, (48, 80)), 1, 254).astype(np.uint8)
    disc = np.zeros(image.shape, bool)
    disc[18:30, 15:65] = True
    outline = register_outline(image, disc)
    assert all(abs(o) <= REGISTRATION_REACH_PX for o in outline.offsets)
    assert np.isfinite(_difference(image, disc))

    image2, disc2 = _drawn_disc(3)
    allowed = np.ones(disc2.shape, bool)
    allowed[:, 70:] = False  # e.g. CSF behind the disc
    reg = register_outline(image2, disc2, allowed=allowed)
    assert not np.any(reg.membership[:, 70:][~disc2[:, 70:]] > 0)
    brighter = image2.copy()
    brighter[:, 70:][~disc2[:, 70:]] = 250
    assert _difference(brighter, disc2, allowed) == _difference(image2, disc2, allowed)


def test_quantify_does_not_grow_a_disc_into_the_csf() -> None:
    """In ``quantify_slice`` the label map says where the outline may grow: a bright block labelled CSF right
    behind the disc leaves the disc's peak difference unchanged whatever its level; labelled background it is
    part of the surroundings the registration looks at."""
    image, disc = _drawn_disc(4)
    labels = np.where(disc, 7, 0).astype(np.uint8)
    block = np.zeros(disc.shape, bool)
    block[20:44, 77:84] = True  # just behind the disc's posterior tip (the line ends at column 80)
    block &= ~disc
    results = {}
    for label in (1, 0):
        for level in (60, 250):
            img, lab = image.copy(), labels.copy()
            img[block], lab[block] = level, label
            results[label, level] = _disc_signal(disc, img, Method.DEFAULT, lab)[0].difference
    assert results[1, 60] == results[1, 250]
    assert results[0, 60] != results[0, 250]


def test_bad_input_is_refused() -> None:
    image, disc = _drawn_disc()
    with pytest.raises(ValueError, match="empty"):
        register_outline(image, np.zeros_like(disc))
    with pytest.raises(ValueError, match="shape"):
        register_outline(image[:10], disc)
