"""ΔSI on disc histograms drawn from known two-peak distributions (method default)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from quantitation import quantify_slice
from quantitation import phantom as ph
from quantitation import signal_intensity as sig


def _two_peaks(rng: np.random.Generator, n: int, m1: float, m2: float, sd: float, frac: float) -> np.ndarray:
    k = int(n * frac)
    v = np.concatenate([rng.normal(m1, sd, k), rng.normal(m2, sd, n - k)])
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(20))
def test_two_peak_difference_recovered_within_2(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sd = float(rng.uniform(3, 8))
    m1 = float(rng.uniform(60, 220))
    sep = float(rng.uniform(5 * sd, 120))
    m2 = m1 - sep if m1 - sep > 15 else m1 + sep
    if m2 > 245:
        m2 = m1 - sep
    n = int(rng.integers(400, 3000))
    frac = float(rng.uniform(0.35, 0.7))
    p = sig.robust_peaks(_two_peaks(rng, n, m1, m2, sd, frac))
    assert p.difference == pytest.approx(abs(m1 - m2), abs=2.0)


def test_unimodal_disc_gives_small_difference() -> None:
    rng = np.random.default_rng(1)
    v = np.clip(np.rint(rng.normal(90, 6, 1500)), 0, 255).astype(np.uint8)
    p = sig.robust_peaks(v)
    assert 6 < p.difference < 12  # about 1.8 SD: a small difference, no spurious tail bin, never merged to 0


def _population(mean: float, sd: float, n: int) -> np.ndarray:
    """n grey values whose histogram is a rounded normal (quantiles, no random draw)."""
    q = (np.arange(n) + 0.5) / n
    return np.clip(np.rint(stats.norm.ppf(q, mean, sd)), 0, 255).astype(np.uint8)


def test_peak_difference_is_continuous_when_three_populations_trade_places() -> None:
    """Dark (40), middle (85) and bright (130) populations; the middle one grows from 20 % to 60 % of the
    disc. An argmax of the main or second peak jumps by 45 levels where the middle one overtakes the others
    (the previous default did, at 34 %); the soft peak pair moves by less than 2.5 levels per percent."""
    n = 2000
    diffs = []
    for share in np.arange(0.20, 0.605, 0.01):
        mid = int(n * share)
        side = (n - mid) // 2
        v = np.concatenate([_population(40, 6, side), _population(85, 6, mid), _population(130, 6, n - mid - side)])
        diffs.append(sig.robust_peaks(v).difference)
    assert diffs[0] == pytest.approx(90, abs=1)  # dark and bright dominate the pair score
    assert float(np.max(np.abs(np.diff(diffs)))) < 2.5
    assert diffs[-1] < diffs[0] - 15  # the middle population does pull the pair in, gradually


def test_a_sparse_tail_is_not_a_peak_but_a_small_population_is() -> None:
    """A dark disc (main population at 22, a shoulder at 50) with a flat bright tail spread over 120-250: as the
    tail grows from 3 % to 12 % of the pixels its ends never count as a peak (without the end-mass discount
    the difference jumped from 11 to 113 levels over that range; SPIDER's collapsed L5/S1 of patient 209 has
    such a tail). A bright population of the same size concentrated at 180 is read once it holds about 7 %."""
    base = np.concatenate([_population(22, 6, 900), _population(50, 10, 100)])
    diffs = [sig.robust_peaks(np.concatenate([base, np.linspace(120, 250, n).round().astype(np.uint8)])).difference
             for n in range(30, 131, 10)]
    assert max(diffs) - min(diffs) < 1.0, diffs
    assert max(diffs) < 20
    bright = [sig.robust_peaks(np.concatenate([base, _population(180, 5, n)])).difference for n in (80, 120, 200)]
    assert bright == pytest.approx([158.0] * 3, abs=2.0)


@pytest.mark.parametrize("share", [0.25, 0.35])
@pytest.mark.parametrize(("sep", "sd"), [(20, 2), (20, 4), (30, 4), (30, 6), (40, 6)])
def test_minor_population_of_a_quarter_recovered_within_2(share: float, sep: float, sd: float) -> None:
    """A smaller population (a quarter or a third of the disc) beside the main one, on either side. Known
    limit, not asserted: at 15 % the soft pair reads up to 12 levels short (bench/results/quantitation.md)."""
    n_minor = int(1000 * share)
    for sign in (1, -1):
        v = np.concatenate([_population(100, sd, 1000 - n_minor), _population(100 + sign * sep, sd, n_minor)])
        assert sig.robust_peaks(v).difference == pytest.approx(sep, abs=2.0)


def test_disc_weights_ramp_with_relative_depth() -> None:
    mask = np.zeros((13, 40), bool)
    mask[2:11, 3:37] = True  # 9 rows thick: depths 1..5 px
    w = sig.disc_weights(mask).reshape(9, 34)
    ramp = sig.DISC_RAMP_SHARE * (5 - 0.5)
    np.testing.assert_allclose(w[:, 17], np.minimum((np.array([1, 2, 3, 4, 5, 4, 3, 2, 1]) - 0.5) / ramp, 1.0))
    eroded = sig.disc_weights(ndimage.binary_erosion(mask))  # 7 rows: the ramp shrinks with the disc
    assert eroded.max() == 1.0 and eroded.min() == pytest.approx(0.5 / (sig.DISC_RAMP_SHARE * (4 - 0.5)))
    assert sig.disc_weights(np.zeros((4, 4), bool)).size == 0


def test_phantom_slice_delta_si_and_fat_reference() -> None:
    spine = ph.draw_spine((700, 420), (0.4, 0.4), disc_peaks=(180.0, 80.0), disc_sd=5.0, csf_level=220, fat_level=170)
    q = quantify_slice(spine.labels, spine.image, spine.spacing)
    assert q.csf_reference == pytest.approx(220, abs=1)
    assert q.fat_reference == pytest.approx(170, abs=1)
    for d in q.discs:
        assert d.delta_si == pytest.approx(100 * 255 / 220, abs=2 * 255 / 220)
        assert d.delta_si_fat == pytest.approx(100 * 255 / 170, abs=2 * 255 / 170)
        assert d.grade_group == 1


def test_outline_sensitivity_flags_a_disc_whose_signal_follows_its_outline() -> None:
    """Every disc carries ΔSI's range over its outline shrunk and grown by one pixel. Drawn nucleus and annulus
    populations barely move (well within the issue's 3 grey levels); a disc whose grey level rises steadily
    with depth (no populations, every ring a different level) moves by more, and only that disc gets a reason
    saying so, with the range and the grade groups it spans."""
    spine = ph.draw_spine((700, 420), (0.4, 0.4), disc_peaks=(180.0, 80.0), disc_sd=5.0, csf_level=220, fat_level=170)
    q = quantify_slice(spine.labels, spine.image, spine.spacing)
    per_level = 255 / q.csf_reference
    for d in q.discs:
        lo, hi = d.delta_si_outline_range
        assert lo <= d.delta_si <= hi and hi - lo < 1.0 * per_level
        assert not any("outline" in r for r in d.reasons)

    image = spine.image.copy()
    disc = spine.labels == 7  # L3/L4
    depth = ndimage.distance_transform_edt(disc)
    image[disc] = np.clip(60 + 10 * depth[disc], 0, 200).astype(np.uint8)
    graded = quantify_slice(spine.labels, image, spine.spacing)
    for before, after in zip(q.discs, graded.discs, strict=True):
        if after.level != "L3/L4":
            assert after == before
            continue
        lo, hi = after.delta_si_outline_range
        assert hi - lo > 3 * per_level
        assert lo <= after.delta_si <= hi
        [reason] = [r for r in after.reasons if "outline" in r]
        assert f"{lo:.1f} to {hi:.1f}" in reason and "more than 3" in reason
        assert "grade group 2 to 3" in reason  # 75.6 .. 88.8 straddles the 84.31 threshold


def test_empty_region_raises_value_error() -> None:
    with pytest.raises(ValueError):
        sig.robust_peaks(np.zeros(0, np.uint8))


def test_csf_reference_is_the_bright_fluid_not_the_cord_inside_the_thecal_sac() -> None:
    """A segmented thecal sac near the conus is mostly dark nerve tissue (SPIDER: its main peak at 21-42
    grey levels); the CSF reference must be the bright fluid, and a sac of CSF alone keeps its own peak."""
    rng = np.random.default_rng(7)
    cord_and_csf = np.concatenate([rng.normal(30, 6, 7000), rng.normal(200, 8, 3000)]).clip(0, 255).astype(np.uint8)
    assert sig.robust_level(cord_and_csf) == pytest.approx(30, abs=3)  # the whole region's main peak: cord
    assert sig.bright_class_level(cord_and_csf) == pytest.approx(200, abs=3)
    csf_only = rng.normal(220, 5, 10000).clip(0, 255).astype(np.uint8)
    assert sig.bright_class_level(csf_only) == pytest.approx(220, abs=1)
    mostly_csf = np.concatenate([rng.normal(40, 6, 2000), rng.normal(210, 6, 8000)]).clip(0, 255).astype(np.uint8)
    assert sig.bright_class_level(mostly_csf) == pytest.approx(sig.robust_level(mostly_csf), abs=0.01)


def test_phantom_delta_si_survives_a_dark_cord_inside_the_csf_mask() -> None:
    spine = ph.draw_spine((700, 420), (0.4, 0.4), disc_peaks=(180.0, 80.0), disc_sd=5.0, csf_level=220, fat_level=170)
    image = spine.image.copy()
    rows, cols = np.nonzero(spine.labels == 1)
    cord = cols - np.array([cols[rows == r].min() for r in rows]) < 0.65 * np.array(
        [np.ptp(cols[rows == r]) + 1 for r in rows])  # the anterior 65 % of each row of the CSF band
    image[rows[cord], cols[cord]] = 35
    q = quantify_slice(spine.labels, image, spine.spacing)
    assert q.csf_reference == pytest.approx(220, abs=2)
    for d in q.discs:
        assert d.delta_si == pytest.approx(100 * 255 / 220, abs=2 * 255 / 220)


def test_fat_fragment_is_no_reference() -> None:
    """A few pixels called presacral fat (what the network leaves on real slices) give no fat reference and a
    warning; the drawn fat region (about a fifth of a body) does."""
    spine = ph.draw_spine((700, 420), (0.4, 0.4), csf_level=220, fat_level=170)
    assert quantify_slice(spine.labels, spine.image, spine.spacing).fat_reference == pytest.approx(170, abs=1)
    labels = spine.labels.copy()
    rows, cols = np.nonzero(labels == 13)
    labels[rows[30:], cols[30:]] = 0  # a fragment of 30 pixels
    q = quantify_slice(labels, spine.image, spine.spacing)
    assert q.fat_reference is None and any("no fat reference" in w for w in q.warnings)
    assert all(d.delta_si_fat is None and d.delta_si is not None for d in q.discs)
