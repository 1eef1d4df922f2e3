"""Decoding (argmax vs threshold) and the fixed spec-4 morphology + anatomical order check."""

from __future__ import annotations

import numpy as np
import pytest

from inference.classes import CLASS_NAMES, NUM_CLASSES
from inference.postprocess import anatomical_warnings, clean_channel, decode, postprocess


def _spine_labels(size: int = 128) -> np.ndarray:
    """L1..S1 and the five discs stacked head (top) to feet, plus CSF and fat columns."""
    lab = np.zeros((size, size), np.uint8)
    row = 4
    for c in range(2, 13):
        h = 10 if c % 2 == 0 else 4
        lab[row:row + h, 40:70] = c
        row += h + 1
    lab[4:120, 75:80] = 1
    lab[110:124, 20:35] = 13
    return lab


def _probs_from_labels(lab: np.ndarray, p_true: float = 0.9) -> np.ndarray:
    probs = np.full((NUM_CLASSES, *lab.shape), (1 - p_true) / (NUM_CLASSES - 1), np.float32)
    np.put_along_axis(probs, lab[None].astype(np.int64), p_true, axis=0)
    return probs


def test_argmax_assigns_every_pixel_threshold_leaves_unsure_pixels() -> None:
    probs = np.zeros((NUM_CLASSES, 4, 4), np.float32)
    probs[0] = 0.3
    probs[2] = 0.45
    probs[3] = 0.25  # nothing above 0.5
    probs[:, 0, 0] = 0
    probs[5, 0, 0] = 0.9
    am, th = decode(probs, "argmax"), decode(probs, "threshold")
    assert am.sum(0).min() == 1 and am.sum(0).max() == 1
    assert am[2].sum() == 15 and am[5, 0, 0]
    assert th.sum() == 1 and th[5, 0, 0]
    out_am, out_th = postprocess(probs, "argmax"), postprocess(probs, "threshold")
    assert (out_th.label_map == 0).sum() == 15 and (out_am.label_map == 0).sum() == 0
    with pytest.raises(ValueError, match="unknown decoding"):
        decode(probs, "median")


def test_clean_spine_passes_without_warnings_and_is_unchanged() -> None:
    lab = _spine_labels()
    out = postprocess(_probs_from_labels(lab))
    assert out.warnings == ()
    assert np.array_equal(out.label_map, lab)


def test_vertebra_opening_largest_component_and_hole_filling() -> None:
    m = np.zeros((40, 40), bool)
    m[5:25, 5:25] = True
    m[12:15, 12:15] = False  # hole: filled
    m[30:38, 30:38] = True  # second, smaller component: dropped
    m[2, 35] = True  # speck: removed by opening
    out = clean_channel(4, m)
    expected = np.zeros_like(m)
    expected[5:25, 5:25] = True
    assert np.array_equal(out, expected)


def test_single_component_holes_are_filled_too() -> None:
    # the original only filled holes when there were >= 2 contours
    m = np.zeros((30, 30), bool)
    m[5:20, 5:20] = True
    m[10:12, 10:12] = False
    assert clean_channel(13, m).sum() == 225
    assert clean_channel(7, m).sum() == 225


def test_components_by_pixel_count_not_polygon_area() -> None:
    # a 1-pixel-wide line (polygon area ~0 in OpenCV) with more pixels than a small square
    m = np.zeros((40, 60), bool)
    m[5, 2:58] = True  # 56 pixels
    m[20:27, 20:27] = True  # 49 pixels
    out = clean_channel(13, m)
    assert out[5].sum() == 56 and not out[20:27, 20:27].any()


def test_disc_fallback_keeps_fragments_when_largest_is_under_95_percent() -> None:
    m = np.zeros((40, 60), bool)
    m[10:16, 5:35] = True  # 180 px
    m[10:16, 38:55] = True  # 102 px -> largest holds 64 %
    m[30, 30] = True  # speck: removed by the opening
    out = clean_channel(5, m)
    assert out[10:16, 5:35].all() and out[10:16, 38:55].all() and not out[30, 30]
    # largest >= 95 %: only the largest kept (tiny fragment dropped)
    m2 = np.zeros((40, 60), bool)
    m2[10:16, 5:45] = True  # 240 px
    m2[30:32, 30:32] = True  # 4 px
    out2 = clean_channel(5, m2)
    assert out2.sum() == 240
    assert not clean_channel(5, np.zeros((8, 8), bool)).any()


def test_csf_is_not_reduced_to_one_component() -> None:
    lab = _spine_labels()
    lab[60:64, 75:80] = 0  # CSF column split in two
    out = postprocess(_probs_from_labels(lab))
    assert (out.label_map == 1).sum() == (lab == 1).sum()


def test_swapped_levels_and_missing_structures_are_reported() -> None:
    lab = _spine_labels()
    l2, l3 = lab == 4, lab == 6
    lab[l2], lab[l3] = 6, 4
    w = postprocess(_probs_from_labels(lab), level_assignment="off").warnings
    assert len(w) == 1 and "anatomical order violated" in w[0] and "L1/L2, L3, L2/L3, L2" in w[0]
    lab = _spine_labels()
    lab[lab == 9] = 0
    w = anatomical_warnings(lab)
    assert w == ["structures not found: " + CLASS_NAMES[9]]


def test_padding_is_never_labelled() -> None:
    lab = _spine_labels()
    valid = np.zeros_like(lab, bool)
    valid[:, :72] = True
    out = postprocess(_probs_from_labels(lab), valid_mask=valid)
    assert not out.label_map[:, 72:].any()
    assert out.masks[:, :, 72:].sum() == 0


def test_original_morphology_reproduces_the_released_inconsistencies() -> None:
    from inference.postprocess import clean_channel_original

    m = np.zeros((30, 30), bool)
    m[5:20, 5:20] = True
    m[10:12, 10:12] = False  # single component with a hole: the original leaves it unfilled
    assert clean_channel_original(13, m).sum() == 225 - 4
    # polygon area: a 1-pixel line (area 0) loses against a smaller square; the square is drawn filled
    m = np.zeros((40, 60), bool)
    m[5, 2:58] = True
    m[20:27, 20:27] = True
    m[22, 22] = False
    out = clean_channel_original(13, m)
    assert not out[5].any() and out[20:27, 20:27].all()
    lab = _spine_labels()
    out = postprocess(_probs_from_labels(lab), "threshold", morphology="original")
    assert np.array_equal(out.label_map, lab) and out.warnings == ()
    with pytest.raises(ValueError, match="unknown morphology"):
        postprocess(_probs_from_labels(lab), morphology="new")
