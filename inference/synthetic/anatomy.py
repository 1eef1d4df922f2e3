"""Label indices, tissue classes and tissue intensities shared by the phantom generator and study writer."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# BianqueNet channel order (spec 2.9)
LABEL_BACKGROUND = 0
LABEL_CSF = 1
BODY_LABELS: tuple[int, ...] = (2, 4, 6, 8, 10, 12)  # L1..L5, S1
DISC_LABELS: tuple[int, ...] = (3, 5, 7, 9, 11)  # L1/L2..L5/S1
LABEL_S1 = 12
LABEL_FAT = 13
DISC_LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")

# ΔSI (0-255 CSF-referenced) ranges per grade, inside the spec 5.9 thresholds with margins
GRADE_DELTA_SI: dict[int, tuple[float, float]] = {
    1: (110.0, 135.0), 2: (88.0, 103.0), 3: (63.0, 80.0), 4: (37.0, 55.0), 5: (10.0, 29.0),
}
_GRADE_BOUNDS = (106.51, 84.31, 59.06, 33.15)


def grade_from_delta_si(delta_si: float) -> int:
    """Grade 1..5 from ΔSI using the fixed thresholds of the spec (5.9)."""
    for g, bound in enumerate(_GRADE_BOUNDS, start=1):
        if delta_si >= bound:
            return g
    return 5


class Tissue(IntEnum):
    AIR = 0
    FAT = 1
    MUSCLE = 2
    BOWEL = 3
    MARROW = 4
    CORTEX = 5
    ANNULUS = 6
    CSF = 7
    CORD = 8
    LIGAMENT = 9
    POSTERIOR = 10
    NUCLEUS_L1L2 = 11
    NUCLEUS_L2L3 = 12
    NUCLEUS_L3L4 = 13
    NUCLEUS_L4L5 = 14
    NUCLEUS_L5S1 = 15


_BASE: dict[str, dict[Tissue, float]] = {
    "T2": {
        Tissue.AIR: 0.01, Tissue.FAT: 0.80, Tissue.MUSCLE: 0.20, Tissue.BOWEL: 0.38, Tissue.MARROW: 0.45,
        Tissue.CORTEX: 0.07, Tissue.ANNULUS: 0.20, Tissue.CSF: 1.00, Tissue.CORD: 0.45, Tissue.LIGAMENT: 0.08,
        Tissue.POSTERIOR: 0.30,
    },
    "T1": {
        Tissue.AIR: 0.01, Tissue.FAT: 0.95, Tissue.MUSCLE: 0.35, Tissue.BOWEL: 0.40, Tissue.MARROW: 0.70,
        Tissue.CORTEX: 0.08, Tissue.ANNULUS: 0.30, Tissue.CSF: 0.15, Tissue.CORD: 0.45, Tissue.LIGAMENT: 0.08,
        Tissue.POSTERIOR: 0.55,
    },
}


def tissue_intensities(
    weighting: str, rng: np.random.Generator, jitter: float, grades: tuple[int, ...],
) -> dict[Tissue, float]:
    """Drawn signal per tissue. On T2 each nucleus is placed so that its ΔSI falls inside its grade's range.

    CSF and annulus are drawn first (CSF jittered by at most ±jitter), the nucleus from the target ΔSI.
    """
    base = _BASE[weighting]
    out: dict[Tissue, float] = {}
    for t, v in base.items():
        out[t] = float(v * (1.0 + rng.uniform(-jitter, jitter))) if jitter > 0 else float(v)
    csf = out[Tissue.CSF]
    ann = out[Tissue.ANNULUS]
    for k, g in enumerate(grades):
        lo, hi = GRADE_DELTA_SI[g]
        dsi = float(rng.uniform(lo, hi))
        if weighting == "T2":
            out[Tissue(int(Tissue.NUCLEUS_L1L2) + k)] = ann + dsi * csf / 255.0
        else:  # T1: nucleus barely differs from annulus
            out[Tissue(int(Tissue.NUCLEUS_L1L2) + k)] = ann * (1.0 + 0.1 * (5 - g) / 4)
    return out
