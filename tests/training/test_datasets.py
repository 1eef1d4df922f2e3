"""Loaders on the real data in ../shared/data: partial-label codes, level mapping, split by subject."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.training.datasets import (
    CODE_CAUDAL,
    CODE_DISC_LUMBAR,
    CODE_NOT_TARGET,
    VALIDATION_SUBJECTS,
    load_ivd,
    load_spider,
    load_vb,
    load_vesal,
    phantom_sample,
    split_by_subject,
)
from inference.training.labels import BODIES, DISCS, determined_classes, make_table

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _need(p: Path) -> Path:
    if not p.exists():
        pytest.fail(f"shared data missing: {p} (the repo's sibling ../shared/data must exist)")
    return p


def _row(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[0].mean())


def test_spider_levels_bottom_up_bodies_anterior_to_canal_and_partial_table() -> None:
    samples = load_spider(_need(DATA / "spider"), slices_per_subject=1, subjects=["5", "7", "22"])
    assert len(samples) == 3 and all(s.mid for s in samples)
    for s in samples:
        assert s.labelled == (1,) + BODIES + DISCS  # levels resolved on these patients
        # level order head -> feet: L1, L1/L2, ..., L5, L5/S1
        rows = [_row(s.codes == c) for c in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
        assert all(np.diff(rows) > 0), rows
        # bodies lie anterior to the canal; posterior elements are "not a target class"
        canal_cols = np.nonzero(s.codes == 1)[1]
        for c in BODIES:
            assert np.nonzero(s.codes == c)[1].mean() < canal_cols.mean()
        assert (s.codes == CODE_NOT_TARGET).sum() > 500
        assert np.nonzero(s.codes == CODE_NOT_TARGET)[1].mean() > canal_cols.mean()
        # unlabelled pixels below the top of L5/S1 and anterior to the canal may be sacrum or presacral fat
        # (never forced to background) but not a lumbar class; higher up they are background
        assert s.table[CODE_CAUDAL, 0] and s.table[CODE_CAUDAL, 12] and s.table[CODE_CAUDAL, 13]
        assert not s.table[CODE_CAUDAL, 1:12].any()
        assert s.table[0].tolist() == [True] + [False] * 13
        caudal_rows = np.nonzero((s.codes == CODE_CAUDAL).any(1))[0]
        l5s1_top = np.nonzero((s.codes == 11).any(1))[0].min()
        assert l5s1_top - 0.04 * s.codes.shape[0] < caudal_rows.min() <= l5s1_top
        assert caudal_rows.max() == s.codes.shape[0] - 1
        assert not (s.codes[:, -5:] == CODE_CAUDAL).any()  # posterior soft tissue stays background
        assert (s.codes[: int(_row(s.codes == 2))] != CODE_CAUDAL).all()  # nothing at the level of L1
        assert s.table[CODE_NOT_TARGET].tolist() == [True] + [False] * 13
        assert sorted(determined_classes(s.table, np.unique(s.codes))) == list(range(1, 12))


def test_ivd_discs_are_level_specific_and_only_discs_are_labelled() -> None:
    samples = load_ivd(_need(DATA / "fastcleverseg_lumbar" / "ivd_t2"), slices_per_subject=1, subjects=["11"])
    (s,) = samples
    assert s.labelled == DISCS
    rows = [_row(s.codes == c) for c in DISCS]  # L1/L2 .. L5/S1
    assert all(np.diff(rows) > 0)
    # unlabelled pixels may be bodies or CSF; S1 and presacral fat only from the top of L5/S1 down
    assert set(np.nonzero(s.table[0])[0]) == {0, 1, *BODIES}
    assert set(np.nonzero(s.table[CODE_CAUDAL])[0]) == {0, 1, *BODIES, 12, 13}
    caudal_rows = np.nonzero((s.codes == CODE_CAUDAL).any(1))[0]
    assert caudal_rows.min() < rows[-1] < caudal_rows.max() and caudal_rows.min() > rows[-2]


def test_vb_instance_ids_sorted_to_levels_lowest_is_l5() -> None:
    samples = load_vb(_need(DATA / "fastcleverseg_lumbar" / "vb2_t2tse"), slices_per_subject=1, subjects=["02"])
    (s,) = samples
    rows = [_row(s.codes == c) for c in BODIES]
    assert all(np.diff(rows) > 0)
    assert (s.codes == CODE_NOT_TARGET).any()  # T11/T12 are none of the 14 classes
    assert _row(s.codes == CODE_NOT_TARGET) < rows[0]
    # S1 / presacral fat allowed only below the middle of L5
    assert not s.table[0, [12, 13]].any() and s.table[CODE_CAUDAL, [12, 13]].all()
    assert np.nonzero((s.codes == CODE_CAUDAL).any(1))[0].min() >= int(rows[-1] - 0.03 * s.codes.shape[0]) > rows[-2]


def test_vesal_has_no_levels_but_group_constraints() -> None:
    samples = load_vesal(_need(DATA / "vesal_sag_t2"))
    assert samples and all(s.labelled == () for s in samples)
    s = samples[0]
    disc_code = int(s.codes[s.codes != 0].min())
    assert set(np.nonzero(s.table[disc_code])[0]) == {0, 3, 5, 7, 9, 11}


def test_vesal_scores_its_five_lowest_discs_as_lumbar_discs_of_any_level() -> None:
    """Training may still call any Vesal disc background (thoracic, or outside a tighter outline); scoring
    counts the five lowest as lumbar discs of any level and leaves the discs above them unscored."""
    for s in load_vesal(_need(DATA / "vesal_sag_t2")):
        m = np.load(DATA / "vesal_sag_t2" / "masks" / f"{s.subject}.npy")
        n, comp = cv2.connectedComponents((m == 1).astype(np.uint8), connectivity=8)
        sizes = [int((comp == i).sum()) for i in range(1, n)]
        big = [i + 1 for i, a in enumerate(sizes) if a >= 30]
        lumbar = s.codes == CODE_DISC_LUMBAR
        assert set(np.nonzero(s.table[CODE_DISC_LUMBAR])[0]) == {0, *DISCS}  # training unchanged
        assert set(np.nonzero(s.eval_table[CODE_DISC_LUMBAR])[0]) == set(DISCS)
        rows = {i: float(np.nonzero(comp == i)[0].mean()) for i in big}
        lowest5 = sorted(rows, key=lambda i: -rows[i])[:5]
        if len(big) >= 5 and min(abs(rows[a] - rows[b]) for a in big for b in big if a != b) >= 10:
            assert lumbar.sum() == sum(sizes[i - 1] for i in lowest5)  # pieces at one height are merged
            assert all(lumbar[comp == i].all() for i in lowest5)
        positive, scored = s.group_target(DISCS)
        assert np.array_equal(positive, lumbar)
        assert not scored[(m == 1) & ~lumbar].any()  # discs above L1/L2 (and fragments) are not scored
        assert scored[m == 0].mean() > 0.95 and scored[m == 2].all()  # a disc there is a false positive
        assert s.group_target(BODIES) is None  # no vertebra is asserted to be a lumbar body


def test_split_is_by_subject_and_fixed() -> None:
    samples = load_spider(_need(DATA / "spider"), slices_per_subject=3, subjects=["5", "7"])
    train, val = split_by_subject(samples)
    assert {s.subject for s in val} == {"5"} and {s.subject for s in train} == {"7"}
    assert "5" in VALIDATION_SUBJECTS["spider"]


def test_phantom_sample_is_fully_labelled() -> None:
    s = phantom_sample(3, size=128)
    assert s.labelled == tuple(range(1, 14)) and s.image.dtype == np.uint8
    assert determined_classes(s.table, np.unique(s.codes)) == list(range(14))


def test_make_table_rejects_bad_classes() -> None:
    with pytest.raises(ValueError):
        make_table([14])
