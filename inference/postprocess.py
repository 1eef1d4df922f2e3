"""Mask decoding and post-processing of BianqueNet outputs (spec sections 2.10 and 4, with F14 fixed).

Decoding (selectable):

* ``"argmax"`` (default): every pixel gets the most probable class, so no pixel is left unassigned.
* ``"threshold"``: the original rule, a pixel belongs to channel c when softmax p_c > 0.5; pixels where no
  class exceeds 0.5 stay unassigned (background in the label map).

Morphology per channel (3x3 structuring element, one iteration), as in the original ``seg_opt`` but with
its inconsistencies fixed:

* background (0) and CSF (1): untouched (CSF is often split, so no largest-component filter);
* vertebrae L1..L5, S1 (even channels 2..12): opening, then the largest connected component;
* presacral fat (13): largest connected component;
* discs (odd channels 3..11): largest connected component; if it holds < 95 % of the channel's pixels,
  the opening of the raw channel is used instead (keeps all fragments);
* components are measured by **pixel count** (8-connectivity), not by OpenCV polygon area;
* holes are filled in **every** processed channel (the original filled only when there were >= 2 contours);
* where hole filling makes channels overlap, the pixel goes to the more probable class.

``morphology="original"`` reproduces the released code instead (OpenCV external contours measured by
polygon area, filled only when a channel has >= 2 contours), for comparisons with the published numbers.

Finally an anatomical check: L1, L1/L2, L2, ..., L5/S1, S1 must appear head to feet in that order
(alternating vertebra / disc). Violations and missing structures are returned as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from inference.classes import CLASS_NAMES, CSF, DISC_CHANNELS, PRESACRAL_FAT, SPINE_CHANNELS_HEAD_TO_FEET

DECODINGS = ("argmax", "threshold")
MORPHOLOGIES = ("fixed", "original")
THRESHOLD = 0.5
DISC_KEEP_RATIO = 0.95
_STRUCT3 = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True, eq=False)
class PostprocessResult:
    label_map: np.ndarray  # (H, W) uint8
    masks: np.ndarray  # (C, H, W) bool, after morphology (may overlap before resolution)
    warnings: tuple[str, ...]


def decode(probabilities: np.ndarray, decoding: str = "argmax") -> np.ndarray:
    """(C, H, W) softmax probabilities -> (C, H, W) bool masks."""
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r}; use one of {DECODINGS}")
    p = np.asarray(probabilities)
    if decoding == "threshold":
        return p > THRESHOLD
    labels = p.argmax(axis=0)
    return labels[None] == np.arange(p.shape[0])[:, None, None]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask, structure=_STRUCT3)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _opening(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_opening(mask, structure=_STRUCT3, iterations=1, border_value=0)


def _fill(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_fill_holes(mask)


def clean_channel(channel: int, mask: np.ndarray) -> np.ndarray:
    """Morphology for one channel (see module docstring)."""
    if channel in (0, CSF) or not mask.any():
        return mask.copy()
    if channel == PRESACRAL_FAT:
        return _fill(_largest_component(mask))
    if channel in DISC_CHANNELS:
        largest = _largest_component(mask)
        if largest.sum() < DISC_KEEP_RATIO * mask.sum():
            return _fill(_opening(mask))
        return _fill(largest)
    return _fill(_largest_component(_opening(mask)))


def _original_largest(mask: np.ndarray) -> np.ndarray:
    """The released ``max_area_extract``: largest external contour by polygon area, drawn filled."""
    m8 = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if len(contours) <= 1:
        return mask.copy()
    areas = [cv2.contourArea(c) for c in contours]
    out = np.zeros_like(m8)
    cv2.drawContours(out, contours, int(np.argmax(areas)), 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _original_opening(mask: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def clean_channel_original(channel: int, mask: np.ndarray) -> np.ndarray:
    """The released ``seg_opt`` for one channel (spec section 4), inconsistencies included."""
    if channel in (0, CSF):
        return mask.copy()
    if channel == PRESACRAL_FAT:
        return _original_largest(mask)
    if channel in DISC_CHANNELS:
        dst = _original_largest(mask)
        raw = int(mask.sum())
        if raw and dst.sum() / raw < DISC_KEEP_RATIO:
            return _original_opening(mask)
        return dst
    return _original_largest(_original_opening(mask))


def compose_label_map(masks: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Masks of channels 1..C-1 -> label map; overlaps go to the more probable class, unclaimed -> 0."""
    claimed = masks[1:]
    score = np.where(claimed, probabilities[1:], -1.0)
    best = score.argmax(axis=0) + 1
    return np.where(claimed.any(axis=0), best, 0).astype(np.uint8)


def anatomical_warnings(label_map: np.ndarray) -> list[str]:
    """Check that L1..S1 and the discs run head (row 0) to feet in order and alternate."""
    present: list[tuple[int, float]] = []
    missing: list[int] = []
    for c in SPINE_CHANNELS_HEAD_TO_FEET:
        rows = np.nonzero(label_map == c)[0]
        if rows.size:
            present.append((c, float(rows.mean())))
        else:
            missing.append(c)
    warnings: list[str] = []
    if missing:
        warnings.append("structures not found: " + ", ".join(CLASS_NAMES[c] for c in missing))
    order = [c for c, _ in sorted(present, key=lambda t: t[1])]
    expected = [c for c, _ in present]
    if order != expected:
        warnings.append(
            "anatomical order violated (head to feet found: "
            + ", ".join(CLASS_NAMES[c] for c in order)
            + "; expected L1, L1/L2, L2, ..., L5/S1, S1)"
        )
    return warnings


def postprocess(probabilities: np.ndarray, decoding: str = "argmax",
                valid_mask: np.ndarray | None = None, morphology: str = "fixed") -> PostprocessResult:
    """(C, H, W) softmax probabilities (model grid, canonical orientation) -> cleaned label map + warnings."""
    if morphology not in MORPHOLOGIES:
        raise ValueError(f"unknown morphology {morphology!r}; use one of {MORPHOLOGIES}")
    clean = clean_channel if morphology == "fixed" else clean_channel_original
    p = np.asarray(probabilities, dtype=np.float32)
    masks = decode(p, decoding)
    if valid_mask is not None:
        masks &= np.asarray(valid_mask, dtype=bool)[None]
    cleaned = np.stack([clean(c, m) for c, m in enumerate(masks)])
    if valid_mask is not None:
        cleaned &= np.asarray(valid_mask, dtype=bool)[None]
    label_map = compose_label_map(cleaned, p)
    return PostprocessResult(label_map, cleaned, tuple(anatomical_warnings(label_map)))
