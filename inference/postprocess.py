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

Level assignment (``level_assignment="sacrum"``, default; ``"off"`` keeps the network's levels), applied to
the decoded masks before the morphology: the radiological convention on a lumbar field of view counts
levels from the sacrum. Spine parts are the connected components (8-connectivity) of the union of all
vertebra channels (L1..S1) and, separately, of all disc channels; parts under a quarter of the median size
of the largest five (discs) / six (bones) of their kind are ignored. Ordered head to feet by centroid row,
the rule is:

1. anchor: the lowest disc part. Evidence is clear only if the network itself calls that part L5/S1
   (majority of its pixels) or calls the first bone part below it S1, and no bone part below it is called
   a lumbar vertebra; otherwise nothing is changed (warning).
2. counting upwards from the anchor, parts must alternate bone, disc, bone, ... ; the unbroken run
   is relabelled L5/S1, L5, L4/L5, ..., L1 by position (parts above L1 in the run become background: they
   are thoracic). The first place where two parts of the same kind follow each other ends the run; parts
   above it keep the network's labels (warning).
3. the bone part directly below the anchor keeps its label (S1 or not labelled).

Every pixel of a part gets the part's level, so a vertebra labelled half L2 and half L3 becomes one level.
The sacrum (S1, channel 12) is then cleaned like the vertebrae, but the component kept is the one lying
just below the L5/S1 disc (caudal to its centroid, nearest to its pixels) rather than the largest; the
largest is kept when there is no L5/S1 disc or no S1 component below it.

Finally an anatomical check: L1, L1/L2, L2, ..., L5/S1, S1 must appear head to feet in that order
(alternating vertebra / disc). Violations and missing structures are returned as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from inference.classes import (
    CLASS_NAMES,
    CSF,
    DISC_CHANNELS,
    PRESACRAL_FAT,
    SPINE_CHANNELS_HEAD_TO_FEET,
    VERTEBRA_CHANNELS,
)

DECODINGS = ("argmax", "threshold")
MORPHOLOGIES = ("fixed", "original")
LEVEL_ASSIGNMENTS = ("sacrum", "off")
PART_MIN_FRACTION = 0.25
MAX_SPACING_RATIO = 1.6
_S1 = 12
_L5_S1 = 11
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


@dataclass(frozen=True, eq=False)
class SpinePart:
    kind: str  # "bone" | "disc"
    pixels: np.ndarray  # (H, W) bool
    centroid: tuple[float, float]  # (row, column); row 0 = head
    label: int  # the network's channel (bones) or majority channel (discs)
    normal: tuple[float, float] = (-1.0, 0.0)  # discs: unit normal of the disc's long axis, pointing to the head

    def head_side(self, point: tuple[float, float]) -> bool:
        """Whether ``point`` lies on the head side of this disc's axis line."""
        return (point[0] - self.centroid[0]) * self.normal[0] + (point[1] - self.centroid[1]) * self.normal[1] > 0


def _size_floor(mask: np.ndarray, keep: int) -> tuple[np.ndarray, int, float]:
    """(component labels, count, PART_MIN_FRACTION x the median size of the ``keep`` largest components)."""
    lab, n = ndimage.label(mask, structure=_STRUCT3)
    if n == 0:
        return lab, 0, 0.0
    sizes = np.bincount(lab.ravel())[1:]
    return lab, n, PART_MIN_FRACTION * float(np.median(np.sort(sizes)[::-1][:keep]))


def _disc_part(pixels: np.ndarray, masks: np.ndarray) -> SpinePart:
    rows, cols = np.nonzero(pixels)
    c = (float(rows.mean()), float(cols.mean()))
    counts = masks[list(DISC_CHANNELS)][:, pixels].sum(1)
    cov = np.cov(np.stack([rows - c[0], cols - c[1]])) if rows.size > 2 else np.eye(2)
    evals, evecs = np.linalg.eigh(cov)
    nr, nc = evecs[:, int(evals.argmin())]  # short axis = normal of the disc plane
    if nr > 0:
        nr, nc = -nr, -nc
    return SpinePart("disc", pixels, c, int(DISC_CHANNELS[int(counts.argmax())]), (float(nr), float(nc)))


def spine_parts(masks: np.ndarray) -> tuple[list[SpinePart], list[SpinePart]]:
    """(discs, bones) of decoded masks. Discs: components of the union of the disc channels, head to feet.
    Bones: components of each vertebra channel L1..L5 separately (S1 is never re-assigned)."""
    lab, n, floor = _size_floor(masks[list(DISC_CHANNELS)].any(0), 5)
    discs = [_disc_part(lab == i, masks) for i in range(1, n + 1) if (lab == i).sum() >= floor]
    bones = []
    lumbar = [c for c in VERTEBRA_CHANNELS if c != _S1]
    _, _, floor = _size_floor(masks[lumbar].any(0), 5)
    for ch in lumbar:
        lab, n = ndimage.label(masks[ch], structure=_STRUCT3)
        for i in range(n):
            m = lab == i + 1
            if m.sum() >= floor:
                rows, cols = np.nonzero(m)
                bones.append(SpinePart("bone", m, (float(rows.mean()), float(cols.mean())), ch))
    return sorted(discs, key=lambda q: q.centroid[0]), bones


def assign_levels(masks: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Re-assign vertebra / disc levels by counting discs from the sacrum (module docstring); returns new
    masks (a copy when changed) and warnings. ``masks``: exclusive decoded channels (C, H, W) bool."""
    discs, bones = spine_parts(masks)
    if not discs:
        return masks, []
    anchor = discs[-1]
    s1 = masks[_S1] & ~np.any([d.pixels for d in discs], axis=0)
    s1_below = bool(s1.any()) and not anchor.head_side(tuple(float(v.mean()) for v in np.nonzero(s1)))
    if anchor.label != _L5_S1 and not s1_below:
        return masks, [f"levels not re-assigned: the lowest disc is labelled {CLASS_NAMES[anchor.label]} "
                       "and no sacrum lies below it"]
    low = [b for b in bones if not anchor.head_side(b.centroid)]
    if low:
        return masks, ["levels not re-assigned: a part below the lowest disc is labelled " + CLASS_NAMES[low[0].label]]
    # the run of discs counted upwards: consecutive discs need bone between them and a spacing of at most
    # MAX_SPACING_RATIO times the median spacing (a larger gap means a disc was not found)
    run = [anchor]
    broken = ""
    for d in discs[-2::-1]:
        between = [b for b in bones if d.head_side(b.centroid) is False and run[-1].head_side(b.centroid)]
        if not between:
            broken = "two discs without a vertebra between them"
            break
        run.append(d)
    gaps = np.diff([d.centroid[0] for d in run[::-1]])
    if len(gaps) >= 3:
        med = float(np.median(gaps))
        for k, g in enumerate(gaps[::-1]):  # bottom-up
            if g > MAX_SPACING_RATIO * med:
                run = run[:k + 1]
                broken = "a gap between discs larger than the others (a disc may be missing)"
                break
    out = masks.copy()
    spine = list(VERTEBRA_CHANNELS[:-1]) + list(DISC_CHANNELS)
    changed: dict[str, int] = {}

    def move(pixels: np.ndarray, old: int, target: int) -> None:
        if target != old:
            key = f"{CLASS_NAMES[old]}->{CLASS_NAMES[target]}"
            changed[key] = changed.get(key, 0) + 1
        out[spine] &= ~pixels[None]
        out[target] |= pixels

    for pos, d in enumerate(run):  # 0 = L5/S1 (11), ..., 4 = L1/L2 (3), above: thoracic
        move(d.pixels, d.label, _L5_S1 - 2 * pos if pos <= 4 else 0)
    for b in bones:
        above = sum(d.head_side(b.centroid) for d in run)  # 1 = between L5/S1 and L4/L5 -> L5
        if above == len(run) and broken:
            continue  # above the counted run: keep the network's label
        move(b.pixels, b.label, 12 - 2 * above if above <= 5 else 0)
    warnings = []
    if changed:
        warnings.append("levels re-assigned by counting from the sacrum: "
                        + ", ".join(f"{k} ({n} part{'s' if n > 1 else ''})" for k, n in changed.items()))
    if broken:
        warnings.append(f"level count from the sacrum stops at {CLASS_NAMES[_L5_S1 - 2 * (len(run) - 1)] if len(run) <= 5 else 'the thoracic spine'} "
                        f"({broken}); the levels above keep the network's labels")
    return (out if changed else masks), warnings


def pick_sacrum(s1_mask: np.ndarray, disc_l5s1: np.ndarray) -> np.ndarray:
    """Cleaned S1: after the opening, the component just below the L5/S1 disc (caudal to the disc's
    centroid, nearest to its pixels); the largest when there is no disc or no such component."""
    opened = _opening(s1_mask)
    lab, n = ndimage.label(opened, structure=_STRUCT3)
    if n <= 1 or not disc_l5s1.any():
        return _fill(_largest_component(opened))
    disc_row = float(np.nonzero(disc_l5s1)[0].mean())
    dist = ndimage.distance_transform_edt(~disc_l5s1)
    best, best_d = 0, np.inf
    for i, sl in enumerate(ndimage.find_objects(lab)):
        comp = lab[sl] == i + 1
        if np.nonzero(comp)[0].mean() + sl[0].start <= disc_row:
            continue
        d = float(dist[sl][comp].min())
        if d < best_d:
            best, best_d = i + 1, d
    if best == 0:
        return _fill(_largest_component(opened))
    return _fill(lab == best)


def postprocess(probabilities: np.ndarray, decoding: str = "argmax",
                valid_mask: np.ndarray | None = None, morphology: str = "fixed",
                level_assignment: str = "sacrum") -> PostprocessResult:
    """(C, H, W) softmax probabilities (model grid, canonical orientation) -> cleaned label map + warnings."""
    if morphology not in MORPHOLOGIES:
        raise ValueError(f"unknown morphology {morphology!r}; use one of {MORPHOLOGIES}")
    if level_assignment not in LEVEL_ASSIGNMENTS:
        raise ValueError(f"unknown level assignment {level_assignment!r}; use one of {LEVEL_ASSIGNMENTS}")
    clean = clean_channel if morphology == "fixed" else clean_channel_original
    p = np.asarray(probabilities, dtype=np.float32)
    masks = decode(p, decoding)
    if valid_mask is not None:
        masks &= np.asarray(valid_mask, dtype=bool)[None]
    level_warnings: list[str] = []
    if level_assignment == "sacrum":
        masks, level_warnings = assign_levels(masks)
    cleaned = np.stack([clean(c, m) for c, m in enumerate(masks)])
    if level_assignment == "sacrum" and morphology == "fixed":
        cleaned[_S1] = pick_sacrum(masks[_S1], cleaned[_L5_S1])
    if valid_mask is not None:
        cleaned &= np.asarray(valid_mask, dtype=bool)[None]
    label_map = compose_label_map(cleaned, p)
    return PostprocessResult(label_map, cleaned, tuple(level_warnings + anatomical_warnings(label_map)))
