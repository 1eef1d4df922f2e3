"""Level assignment counted from the sacrum (inference.postprocess, level_assignment="sacrum") and the choice
of the S1 component below the L5/S1 disc, on constructed label maps."""

from __future__ import annotations

import numpy as np
import pytest

from inference.classes import NUM_CLASSES
from inference.postprocess import assign_levels, decode, pick_sacrum, postprocess

L1, L1L2, L2, L2L3, L3, L3L4, L4, L4L5, L5, L5S1, S1 = range(2, 13)


def _column(structures: list[tuple[str, int]], size: int = 160) -> np.ndarray:
    """Stack ("bone"|"disc"|"gap", label) head (row 0) to feet: bones 12 rows, discs 4, one empty row between."""
    lab = np.zeros((size, size), np.uint8)
    row = 3
    for kind, label in structures:
        h = {"bone": 12, "disc": 4, "gap": 12}[kind]
        lab[row:row + h, 50:84] = label
        row += h + 1
    assert row < size
    lab[3:row, 90:95] = 1  # CSF behind the spine
    return lab


def _probs(lab: np.ndarray, p_true: float = 0.9) -> np.ndarray:
    probs = np.full((NUM_CLASSES, *lab.shape), (1 - p_true) / (NUM_CLASSES - 1), np.float32)
    np.put_along_axis(probs, lab[None].astype(np.int64), p_true, axis=0)
    return probs


def _chain(labels: list[int]) -> list[tuple[str, int]]:
    return [("disc" if c in (3, 5, 7, 9, 11) else "bone", c) for c in labels]


CORRECT = [L1, L1L2, L2, L2L3, L3, L3L4, L4, L4L5, L5, L5S1, S1]


def _row_labels(lab: np.ndarray) -> list[int]:
    """Labels down the spine's middle column (each structure once, head to feet)."""
    col = lab[:, 67]
    out: list[int] = []
    for v in col:
        if v and (not out or out[-1] != v):
            out.append(int(v))
    return out


def test_correct_chain_is_unchanged_without_level_warnings() -> None:
    lab = _column(_chain(CORRECT))
    out = postprocess(_probs(lab))
    assert np.array_equal(out.label_map, lab)
    assert out.warnings == ()


def test_shifted_and_mixed_chain_is_counted_from_the_sacrum() -> None:
    """As in SPIDER subject 162: T12 called L1, L1 called L2, L2 also called L2, the disc above L1 called
    L1/L2 and the L1/L2 disc called L2/L3; from L3 down the network is right."""
    truth = [0, 0, L1, L1L2, L2, L2L3, L3, L3L4, L4, L4L5, L5, L5S1, S1]  # T12 and T12/L1 are background
    net = [L1, L1L2, L2, L2L3, L2, L2L3, L3, L3L4, L4, L4L5, L5, L5S1, S1]
    structures = _chain(net)
    lab = _column(structures)
    expected = _column([(kind, t) for (kind, _), t in zip(structures, truth)])
    out = postprocess(_probs(lab))
    assert np.array_equal(out.label_map, expected)
    assert any("re-assigned by counting from the sacrum" in w for w in out.warnings), out.warnings
    assert not any("order violated" in w for w in out.warnings)
    off = postprocess(_probs(lab), level_assignment="off")
    assert not np.array_equal(off.label_map, expected)
    assert (off.label_map[3:15] == L1).any()  # without counting, the thoracic vertebra stays "L1"


def test_vertebra_labelled_half_one_level_half_the_next_becomes_one_level() -> None:
    lab = _column(_chain(CORRECT))
    full_l2 = int((lab == L2).sum())
    l2 = np.nonzero(lab == L2)
    top = l2[0] < l2[0].min() + 6
    lab[l2[0][~top], l2[1][~top]] = L3  # lower half of L2 called L3
    off = postprocess(_probs(lab), level_assignment="off")
    assert (off.label_map == L2).sum() < full_l2  # half of the vertebra is lost without counting
    out = postprocess(_probs(lab))
    assert np.array_equal(out.label_map, _column(_chain(CORRECT)))


def test_lowest_disc_not_l5s1_and_no_sacrum_is_left_alone_with_a_warning() -> None:
    """Lowest disc called L4/L5 and nothing called S1 below it: the count has no anchor."""
    labels = [L1, L1L2, L2, L2L3, L2, L2L3, L3, L3L4, L4, L4L5, L5]
    lab = _column(_chain(labels))
    masks = decode(_probs(lab))
    new, warnings = assign_levels(masks)
    assert new is masks
    assert len(warnings) == 1 and "not re-assigned" in warnings[0] and "L4/L5" in warnings[0]
    out = postprocess(_probs(lab))
    assert any("not re-assigned" in w for w in out.warnings)


def test_lumbar_label_below_the_lowest_disc_is_left_alone() -> None:
    labels = [L1, L1L2, L2, L2L3, L3, L3L4, L4, L4L5, L5, L5S1, L5]
    masks = decode(_probs(_column(_chain(labels))))
    new, warnings = assign_levels(masks)
    assert new is masks and "below the lowest disc" in warnings[0]


def test_missing_disc_stops_the_count_and_keeps_the_labels_above() -> None:
    """No disc found between L2 and L3: counting stops at L2/L3 (where the disc spacing doubles); the
    levels above keep the network's (here wrong) labels instead of being counted through the gap."""
    net = [L2, L2L3, L2, ("gap", 0), L3, L3L4, L4, L4L5, L5, L5S1, S1]
    structures = [s if isinstance(s, tuple) else _chain([s])[0] for s in net]
    lab = _column(structures)
    out = postprocess(_probs(lab))
    assert any("count from the sacrum stops" in w for w in out.warnings), out.warnings
    assert _row_labels(out.label_map)[-7:] == [L3, L3L4, L4, L4L5, L5, L5S1, S1]


def test_sacrum_is_the_component_below_the_l5s1_disc_not_the_largest() -> None:
    lab = _column(_chain(CORRECT))
    s1_rows = np.nonzero(lab == S1)[0]
    lab[10:40, 5:40] = S1  # a larger false "S1" area in front of the upper spine
    out = postprocess(_probs(lab))
    assert out.label_map[10:40, 5:40].max() == 0
    assert (out.label_map[s1_rows.min():s1_rows.max() + 1, 50:84] == S1).all()
    off = postprocess(_probs(lab), level_assignment="off")
    assert (off.label_map[10:40, 5:40] == S1).all()  # the old rule keeps the largest component


def test_pick_sacrum_falls_back_to_the_largest_without_a_disc() -> None:
    s1 = np.zeros((60, 60), bool)
    s1[5:25, 5:25] = True
    s1[40:48, 40:48] = True
    picked = pick_sacrum(s1, np.zeros_like(s1))
    assert picked[5:25, 5:25].all() and not picked[40:48, 40:48].any()


def test_unknown_level_assignment_is_rejected() -> None:
    with pytest.raises(ValueError, match="level assignment"):
        postprocess(_probs(_column(_chain(CORRECT))), level_assignment="top-down")
