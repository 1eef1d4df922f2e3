"""Phantom generator: reproducibility, complete labels, ground truth consistent with the drawn image."""

from __future__ import annotations

import numpy as np
import pytest

from inference.synthetic import PhantomOptions, generate_phantom
from inference.synthetic.anatomy import BODY_LABELS, DISC_LABELS, grade_from_delta_si


def test_same_seed_same_phantom_and_different_seed_differs() -> None:
    a = generate_phantom(11, PhantomOptions(rows=256, cols=256))
    b = generate_phantom(11, PhantomOptions(rows=256, cols=256))
    c = generate_phantom(12, PhantomOptions(rows=256, cols=256))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.discs == b.discs
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_all_fourteen_labels_present_and_anatomically_ordered(seed: int) -> None:
    p = generate_phantom(seed, PhantomOptions(rows=384, cols=384))
    counts = np.bincount(p.labels.ravel(), minlength=14)
    assert (counts[1:] > 30).all(), counts
    rows = np.arange(p.labels.shape[0])[:, None] * np.ones_like(p.labels)
    cols = np.arange(p.labels.shape[1])[None, :] * np.ones_like(p.labels)
    centroid_rows = [rows[p.labels == k].mean() for k in range(2, 13)]
    assert all(np.diff(centroid_rows) > 0), "L1, L1/L2, ..., L5/S1, S1 must run head -> feet"
    # CSF lies posterior (larger column) to every body at the same rows; fat anterior to S1
    for k in BODY_LABELS[:5]:
        body = p.labels == k
        r = int(rows[body].mean())
        csf_cols = np.nonzero(p.labels[r] == 1)[0]
        assert csf_cols.size and csf_cols.min() > cols[body].mean()
    shared_rows = [r for r in range(p.labels.shape[0]) if (p.labels[r] == 13).any() and (p.labels[r] == 12).any()]
    assert shared_rows, "presacral fat must sit beside S1"
    for r in shared_rows:
        assert np.nonzero(p.labels[r] == 13)[0].mean() < np.nonzero(p.labels[r] == 12)[0].mean()


def test_disc_truth_matches_drawn_grade_height_and_intensity() -> None:
    p = generate_phantom(5, PhantomOptions.clean(grades=(1, 2, 3, 4, 5)))
    assert [d.grade for d in p.discs] == [1, 2, 3, 4, 5]
    heights = [d.height_mm for d in p.discs]
    assert heights[0] > 0 and heights[4] < heights[3] < heights[2]  # degeneration narrows the disc
    for d in p.discs:
        assert 3.0 < d.height_mm < 16.0 and 25.0 < d.width_mm < 50.0
        assert grade_from_delta_si(d.delta_si) == d.grade
        mask = p.labels == d.label
        vals = p.image[mask]
        # nucleus and annulus intensities are both present in the drawn disc (clean image)
        assert np.isclose(vals, d.nucleus_intensity, atol=1e-4).sum() > 20
        assert np.isclose(vals, d.annulus_intensity, atol=1e-4).sum() > 20
        # mask area / width ~ height: the mean central height is consistent with the label map
        area_mm2 = mask.sum() * p.pixel_spacing_mm[0] * p.pixel_spacing_mm[1]
        assert 0.75 < area_mm2 / d.width_mm / d.height_mm < 1.35
    csf_vals = p.image[p.labels == 1]
    assert np.isclose(np.median(csf_vals), p.csf_intensity, rtol=0.02)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="grades"):
        generate_phantom(0, PhantomOptions(grades=(1, 2, 3)))
    with pytest.raises(ValueError, match="weighting"):
        generate_phantom(0, PhantomOptions(weighting="PD"))
