"""Level-agnostic scores of the evaluation: discs / vertebral bodies as one structure, unscored pixels."""

from __future__ import annotations

import numpy as np

from inference.training.datasets import CODE_DISC_ANY, Sample
from inference.training.evaluation import score_samples
from inference.training.labels import DISCS, make_table


def _sample(codes: np.ndarray, table: np.ndarray, labelled: tuple[int, ...]) -> Sample:
    return Sample(np.zeros(codes.shape, np.uint8), codes, table, tuple((c,) for c in labelled), labelled,
                  "test", "s1", "test/s1")


def _two_discs() -> np.ndarray:
    codes = np.zeros((40, 40), np.uint8)
    codes[10:14, 5:25] = 9  # L4/L5, 80 px
    codes[20:24, 5:25] = 11  # L5/S1, 80 px
    codes[30:33, 5:25] = CODE_DISC_ANY  # a disc whose level (lumbar or thoracic) the source leaves open
    return codes


def test_swapped_levels_score_zero_per_class_but_one_as_any_disc() -> None:
    codes = _two_discs()
    table = make_table([9, 11], extra={CODE_DISC_ANY: (0,) + DISCS})
    pred = np.zeros_like(codes)
    pred[codes == 9], pred[codes == 11] = 11, 9
    report = score_samples([pred], [_sample(codes, table, (9, 11))], "test")
    assert report.summary["discs"] == 0.0
    assert report.summary["discs (any level)"] == 1.0
    assert "vertebral bodies (any level)" not in report.summary  # this source labels no body


def test_open_pixels_are_not_scored_and_false_positives_are() -> None:
    codes = _two_discs()
    table = make_table(DISCS, extra={CODE_DISC_ANY: (0,) + DISCS})  # unlabelled pixels: no disc
    pred = np.where(np.isin(codes, (9, 11)), codes, 0).astype(np.uint8)
    pred[codes == CODE_DISC_ANY] = 7  # on the open disc: neither right nor wrong
    assert score_samples([pred], [_sample(codes, table, DISCS)], "test").summary["discs (any level)"] == 1.0
    pred[0:2, 0:20] = 5  # 40 disc pixels on background
    assert score_samples([pred], [_sample(codes, table, DISCS)], "test").summary["discs (any level)"] == (
        2 * 160 / (200 + 160))
    # where the source does not say that a pixel is no disc, a disc there is not counted either
    loose = make_table([9, 11], extra={CODE_DISC_ANY: (0,) + DISCS})  # unlabelled pixels may be L1/L2..L3/L4
    assert score_samples([pred], [_sample(codes, loose, (9, 11))], "test").summary["discs (any level)"] == 1.0


def test_a_source_without_anything_to_score_says_so() -> None:
    codes = np.zeros((8, 8), np.uint8)
    everything = np.ones((256, 14), bool)
    report = score_samples([codes.copy()], [_sample(codes, everything, ())], "open")
    assert report.summary == {} and report.classes == ()
    assert "nothing to score" in report.markdown()
