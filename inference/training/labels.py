"""Partial-label encoding shared by the loaders, the loss and the evaluation.

A training sample carries a ``codes`` map (uint8) and a per-source ``allowed`` table (256 x 14 bool):
a pixel with code ``k`` may belong to any class ``c`` with ``allowed[k, c]``. A fully labelled pixel
has exactly one allowed class; a pixel a source does not label may be any class the source does not
define (never forced to background). The loss is the marginal cross-entropy ``-log sum_{c allowed} p_c``
plus a weighted soft Dice over *groups* of classes that the source determines (see ``dice_groups``).

Code conventions: 0..13 = that class for certain (when the table says so), 254 = certainly
background (canvas padding, structures that are none of the 14 classes), 255 = ignore (any class).
Loaders add their own codes in between (e.g. "a disc of unknown level").
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

NUM_CLASSES = 14
CSF = 1
BODIES: tuple[int, ...] = (2, 4, 6, 8, 10)  # L1..L5
DISCS: tuple[int, ...] = (3, 5, 7, 9, 11)  # L1/L2..L5/S1
S1 = 12
FAT = 13
BONES: tuple[int, ...] = BODIES + (S1,)
ALL: frozenset[int] = frozenset(range(NUM_CLASSES))
FOREGROUND: frozenset[int] = frozenset(range(1, NUM_CLASSES))
CODE_BACKGROUND = 254
CODE_IGNORE = 255
# paper's Dice weights: 0.9 vertebral bodies (incl. S1), 0.8 discs, 1 others
CLASS_WEIGHTS: tuple[float, ...] = tuple(0.9 if c in BONES else 0.8 if c in DISCS else 1.0 for c in range(NUM_CLASSES))


def make_table(labelled: Iterable[int], extra: dict[int, Iterable[int]] | None = None) -> np.ndarray:
    """Allowed-class table for a source that labels ``labelled`` classes exactly.

    Code c in ``labelled`` -> {c}; code 0 and any unlisted code -> {background} + classes the source
    does not label; 254 -> {0}; 255 -> all; ``extra`` maps further codes to explicit class sets.
    """
    lab = set(labelled)
    if not lab <= ALL:
        raise ValueError(f"class indices must be 0..13, got {sorted(lab)}")
    table = np.zeros((256, NUM_CLASSES), bool)
    unlabelled = sorted((ALL - lab) | {0})
    table[:, unlabelled] = True
    for c in lab:
        table[c] = False
        table[c, c] = True
    table[CODE_BACKGROUND] = False
    table[CODE_BACKGROUND, 0] = True
    table[CODE_IGNORE] = True
    for code, classes in (extra or {}).items():
        table[code] = False
        table[code, sorted(set(classes))] = True
    return table


def groups_mask(groups: Iterable[Iterable[int]]) -> np.ndarray:
    """(G, 14) float32 membership matrix of Dice groups."""
    gl = [sorted(set(g)) for g in groups]
    out = np.zeros((len(gl), NUM_CLASSES), np.float32)
    for i, g in enumerate(gl):
        out[i, g] = 1.0
    return out


def group_weight(group: Iterable[int]) -> float:
    g = list(group)
    return float(np.mean([CLASS_WEIGHTS[c] for c in g]))


def determined_classes(table: np.ndarray, codes_present: Iterable[int]) -> list[int]:
    """Classes c for which every present code either allows only c or does not allow c."""
    present = list(codes_present)
    out = []
    for c in range(NUM_CLASSES):
        ok = all((not table[k, c]) or table[k].sum() == 1 for k in present)
        if ok:
            out.append(c)
    return out
