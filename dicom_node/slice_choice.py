"""Choosing the mid-sagittal slice in ``best`` mode: segment the central few slices, keep the most complete.

Score of one label map: the number of discs present (each with at least ``min_disc_pixels``), plus the
fraction of the lumbar column's height (top of the highest to bottom of the lowest labelled
vertebra/disc row) along which the spinal canal (CSF class) is present. The best score wins; ties go to
the slice nearest the geometric centre. Pure: label maps in, an index out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CSF = 1
DISCS = (3, 5, 7, 9, 11)
SPINE = tuple(range(2, 13))  # L1 .. S1, discs included


@dataclass(frozen=True)
class SliceScore:
    discs_present: int
    canal_fraction: float

    @property
    def value(self) -> float:
        return self.discs_present + self.canal_fraction


def score_label_map(label_map: np.ndarray, min_disc_pixels: int = 20) -> SliceScore:
    labels = np.asarray(label_map)
    discs = sum(int(np.count_nonzero(labels == d) >= min_disc_pixels) for d in DISCS)
    spine_rows = np.flatnonzero(np.isin(labels, SPINE).any(axis=1))
    if spine_rows.size == 0:
        return SliceScore(discs, 0.0)
    top, bottom = int(spine_rows.min()), int(spine_rows.max())
    canal_rows = (labels[top : bottom + 1] == CSF).any(axis=1)
    return SliceScore(discs, float(canal_rows.mean()))


def best_index(label_maps: Sequence[np.ndarray], centre_position: int, positions: Sequence[int]) -> int:
    """Index (into ``label_maps``) of the most complete slice; ``positions`` are stack indices and
    ``centre_position`` the geometric centre's stack index (tie-break: nearest to it)."""
    if not label_maps:
        raise ValueError("no candidate slices")
    scores = [score_label_map(m).value for m in label_maps]
    return min(range(len(label_maps)), key=lambda i: (-round(scores[i], 6), abs(positions[i] - centre_position), i))
