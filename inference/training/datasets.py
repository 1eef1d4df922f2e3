"""Training/evaluation sources -> ``Sample`` lists (canonical 8-bit image + partial-label codes).

Every loader returns samples in the canonical orientation (rows head->feet, columns
anterior->posterior). Level identities come from anatomy where a source lacks them:
structures are sorted caudal -> cranial and the lowest disc is L5/S1, the lowest lumbar body L5.

Sources (``kind`` in a recipe):
* ``phantom``   : generated slices, all 14 classes.
* ``spider``    : SPIDER T2-SPACE PNGs (vertebra 76 / disc 29 / canal 150). Bodies = vertebra pixels
                  anterior to the canal; canal = CSF; levels bottom-up; sacrum/fat unknown.
* ``ivd``       : fastcleverseg ivd_t2 .mat volumes, level-specific discs only.
* ``vb``        : fastcleverseg vb2_t2tse .mat volumes, vertebral bodies (instance ids, sorted).
* ``vesal``     : 20 PNG + npy, disc / vertebra without levels.
* ``labelme``   : LabelMe JSON (polygons named after the 14 classes; image next to the JSON).
* ``labelmap``  : image PNG + label PNG (class indices 0..13), folders ``images/`` and ``labels/``.
* ``mat``       : generic .mat volume (keys I/GT) with a value -> class mapping.

Validation subjects are fixed here (``VALIDATION_SUBJECTS``) so every run uses the same split.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference.training.labels import (
    BODIES,
    BONES,
    CODE_IGNORE,
    CSF,
    DISCS,
    FAT,
    NUM_CLASSES,
    S1,
    make_table,
)

CLASS_NAMES: tuple[str, ...] = (
    "background", "CSF", "L1", "L1/L2", "L2", "L2/L3", "L3", "L3/L4", "L4", "L4/L5", "L5", "L5/S1", "S1",
    "presacral fat",
)

# fixed validation split BY SUBJECT (chosen once, spread over each source's id range)
VALIDATION_SUBJECTS: dict[str, frozenset[str]] = {
    "spider": frozenset({"5", "57", "110", "162", "220"}),
    "vb": frozenset({"05", "12", "18"}),
    "ivd": frozenset({"42"}),
    "vesal": frozenset({"3", "8", "15", "19"}),
    "phantom": frozenset({f"val{i}" for i in range(1000)}),
}
PHANTOM_VAL_SEED_BASE = 1_000_000  # validation phantoms use seeds from here (never used in training)

# extra codes used by the real-data loaders
CODE_DISC_ANY = 20  # a disc whose level is unknown
CODE_BONE_ANY = 21  # a vertebral body (or sacrum top) whose level is unknown
CODE_NOT_TARGET = 22  # a labelled structure that is none of the 14 classes (thoracic level, posterior elements)
CODE_CAUDAL = 23  # an unlabelled pixel low enough to be sacrum (S1) or presacral fat
CODE_DISC_LUMBAR = 24  # a disc of unknown level among the five lowest (lumbar when counted bottom-up)

# S1 and presacral fat lie below the L5/S1 disc: unlabelled pixels above that (minus this share of the
# image height) may not be either. Without this, a source that labels neither lets the network call any
# soft tissue "S1" at no cost, and it did (large "S1" areas in front of the spine on SPIDER slices).
CAUDAL_MARGIN_FRAC = 0.03


@dataclass(frozen=True)
class Sample:
    image: np.ndarray = field(repr=False)  # uint8 (H, W) canonical grey
    codes: np.ndarray = field(repr=False)  # uint8 (H, W)
    table: np.ndarray = field(repr=False)  # bool (256, 14) allowed classes per code
    groups: tuple[tuple[int, ...], ...]  # Dice groups the source determines
    labelled: tuple[int, ...]  # classes the source labels exactly (for evaluation)
    source: str
    subject: str
    name: str
    mid: bool = True  # the subject's mid-sagittal slice (evaluation uses these)
    spacing_mm: tuple[float, float] | None = None
    # what the annotation asserts, for scoring, where that is stricter than what training may learn
    # from it (``table``); None: the same table
    eval_table: np.ndarray | None = field(default=None, repr=False)

    def target(self, c: int) -> np.ndarray:
        """Binary mask of class ``c`` (only meaningful for ``c in labelled``)."""
        exact = self.table.sum(1) == 1
        codes_c = np.nonzero(self.table[:, c] & exact)[0]
        return np.isin(self.codes, codes_c)

    def group_target(self, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Level-agnostic reference for a class group, e.g. all five discs: (positives, scored pixels).

        A pixel is a positive where every class its code allows (``eval_table``, else ``table``) is in the
        group, a negative where none is, and not scored otherwise (a disc of unknown level that may be
        thoracic, a pixel of a class the source does not label). None when there is no positive pixel.
        """
        table = self.table if self.eval_table is None else self.eval_table
        in_group = np.zeros(NUM_CLASSES, bool)
        in_group[list(classes)] = True
        some = table[:, in_group].any(1)
        positive_code = some & ~table[:, ~in_group].any(1)
        positive = positive_code[self.codes]
        if not positive.any():
            return None
        return positive, (positive_code | ~some)[self.codes]


class DatasetError(Exception):
    """A training/evaluation source is missing or malformed."""


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def to_uint8(img: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.5) -> np.ndarray:
    """Linear 1-99.5 % percentile window to 8 bit, as inference does for DICOM without a VOI window."""
    a = img.astype(np.float32)
    lo, hi = np.percentile(a, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def _components(mask: np.ndarray, min_px: int) -> list[tuple[np.ndarray, float, float]]:
    """Connected components (8-connectivity) >= min_px as (mask, centroid_row, centroid_col)."""
    n, lab, stats, cent = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] >= min_px:
            out.append((lab == i, float(cent[i][1]), float(cent[i][0])))
    return out


def canal_front(canal: np.ndarray) -> np.ndarray:
    """Per row, the anterior (smallest) column of the canal; interpolated over rows without canal."""
    rows = np.nonzero(canal.any(1))[0]
    h = canal.shape[0]
    if rows.size == 0:
        return np.full(h, canal.shape[1], np.float32)
    front = np.array([np.nonzero(canal[r])[0].min() for r in rows], np.float32)
    return np.interp(np.arange(h), rows, front).astype(np.float32)


def mark_caudal(codes: np.ndarray, top_row: float | None, front: np.ndarray | None = None, front_margin: float = 0.0) -> None:
    """In place: unlabelled pixels (code 0) from ``top_row`` (minus the margin) down, and anterior to
    ``front`` + ``front_margin`` (per-row column limit) when given, become ``CODE_CAUDAL``.
    ``top_row`` None (no anchor found): every unlabelled pixel may be S1 / fat, as before."""
    if top_row is None:
        codes[codes == 0] = CODE_CAUDAL
        return
    h, w = codes.shape
    region = np.zeros((h, w), bool)
    region[max(0, int(np.floor(top_row - CAUDAL_MARGIN_FRAC * h))):] = True
    if front is not None:
        region &= np.arange(w)[None, :] < (front[:, None] + front_margin)
    codes[(codes == 0) & region] = CODE_CAUDAL


def _top_row(mask: np.ndarray) -> float | None:
    rows = np.nonzero(mask.any(1))[0]
    return float(rows.min()) if rows.size else None


def _assign_levels(components: list[tuple[np.ndarray, float, float]], levels: Sequence[int]) -> list[tuple[np.ndarray, int | None]]:
    """Sort caudal -> cranial and attach ``levels`` in that order; the rest get None."""
    comps = sorted(components, key=lambda t: -t[1])
    return [(m, levels[i] if i < len(levels) else None) for i, (m, _, _) in enumerate(comps)]


# ----------------------------------------------------------------------------------------------
# SPIDER
# ----------------------------------------------------------------------------------------------

SPIDER_TABLE = make_table(
    list(BODIES) + list(DISCS) + [CSF],
    extra={0: (0,), CODE_CAUDAL: (0, S1, FAT), CODE_NOT_TARGET: (0,), CODE_DISC_ANY: (0,) + DISCS,
           CODE_BONE_ANY: (0,) + BONES},
)


def merge_same_height(discs: list[tuple[np.ndarray, float, float]], tolerance_px: float) -> list[tuple[np.ndarray, float]]:
    """Disc pieces whose centroid rows lie within ``tolerance_px`` (a disc split by a dark cleft) merged,
    as (mask, row), caudal first."""
    merged: list[tuple[np.ndarray, float]] = []
    for m, r, _ in sorted(discs, key=lambda t: -t[1]):
        if merged and abs(merged[-1][1] - r) < tolerance_px:
            merged[-1] = (merged[-1][0] | m, (merged[-1][1] + r) / 2)
        else:
            merged.append((m, r))
    return merged


def spider_codes(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """Codes for one SPIDER mask; returns (codes, levels_ok).

    Bodies = vertebra pixels anterior to the canal's front line; posterior elements -> not-target.
    Discs (components >= 200 px) and bodies (>= 300 px) are numbered bottom-up (L5/S1, L5, ...);
    levels are trusted only when the lowest disc lies below the lowest body and discs and bodies
    alternate upward for the lumbar range; otherwise their level is left open (disc/bone of any level).
    Unlabelled pixels are background, except below the top of the lowest disc and anterior to the
    canal (+6 % of the width), where the unlabelled sacrum and presacral fat lie (``CODE_CAUDAL``).
    """
    vert, disc, canal = mask == 76, mask == 29, mask == 150
    codes = np.zeros(mask.shape, np.uint8)
    codes[canal] = CSF
    front = canal_front(canal)
    cols = np.arange(mask.shape[1])[None, :]
    body = vert & (cols < front[:, None] - 0.5)
    codes[vert & ~body] = CODE_NOT_TARGET
    discs = _components(disc, 200)
    bodies = _components(body, 300)
    codes[disc] = CODE_IGNORE  # fragments stay ignored
    codes[body] = CODE_IGNORE
    merged = merge_same_height(discs, 25.0)
    mark_caudal(codes, _top_row(merged[0][0]) if merged else None,
                front if canal.any() else None, 0.06 * mask.shape[1])
    big_bodies = [t for t in bodies if t[0].sum() >= 1000]
    ok = bool(merged) and all(r < merged[0][1] for _, r, _ in big_bodies)
    disc_levels = (11, 9, 7, 5, 3)
    body_levels = (10, 8, 6, 4, 2)
    if not ok:
        for m, _ in merged:
            codes[m] = CODE_DISC_ANY
        for m, _, _ in bodies:
            codes[m] = CODE_BONE_ANY
        return codes, False
    for i, (m, _) in enumerate(merged):
        codes[m] = disc_levels[i] if i < 5 else CODE_NOT_TARGET
    rows_d = [r for _, r in merged]
    for m, r, _ in bodies:
        below = sum(1 for rd in rows_d if rd > r)  # discs below this body piece
        if below == 0:
            continue  # below the lowest disc: stays ignored
        if below <= 5:
            if below == len(rows_d) and below < 5:
                # above the highest visible disc: the next level only if close to that disc
                if rows_d[-1] - r > 60:
                    continue
            codes[m] = body_levels[below - 1]
        else:
            codes[m] = CODE_NOT_TARGET
    return codes, ok


def load_spider(root: Path, *, slices_per_subject: int = 5, subjects: Sequence[str] | None = None) -> list[Sample]:
    """The ``slices_per_subject`` central slices of each patient (middle one marked ``mid``)."""
    man = root / "t2space_png" / "manifest.csv"
    if not man.is_file():
        raise DatasetError(f"SPIDER manifest not found: {man}")
    import csv

    by_subject: dict[str, list[dict[str, str]]] = {}
    with open(man, newline="") as f:
        for row in csv.DictReader(f):
            by_subject.setdefault(row["subject"], []).append(row)
    out: list[Sample] = []
    for subj in sorted(by_subject, key=lambda s: int(s)):
        if subjects is not None and subj not in subjects:
            continue
        rows = sorted(by_subject[subj], key=lambda r: int(r["slice"]))
        mid = len(rows) // 2
        half = slices_per_subject // 2
        for i in range(max(0, mid - half), min(len(rows), mid + half + 1)):
            r = rows[i]
            img = cv2.imread(str(root / "t2space_png" / r["image_file"]), cv2.IMREAD_GRAYSCALE)
            msk = cv2.imread(str(root / "t2space_png" / r["mask_file"]), cv2.IMREAD_GRAYSCALE)
            if img is None or msk is None:
                raise DatasetError(f"cannot read SPIDER slice {r['image_file']}")
            codes, ok = spider_codes(msk)
            groups = tuple((c,) for c in (CSF,) + BODIES + DISCS) if ok else ((CSF,),)
            out.append(Sample(
                image=img, codes=codes, table=SPIDER_TABLE, groups=groups,
                labelled=(CSF,) + BODIES + DISCS if ok else (CSF,), source="spider", subject=subj,
                name=f"spider/{r['series']}/slice{r['slice']}", mid=(i == mid),
            ))
    return out


# ----------------------------------------------------------------------------------------------
# fastcleverseg .mat volumes
# ----------------------------------------------------------------------------------------------


def _load_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        d = loadmat(str(path))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file; save it as v7 or earlier") from exc
    if "I" not in d or "GT" not in d:
        raise DatasetError(f"{path} lacks the variables I and GT")
    img, gt = d["I"], d["GT"]
    z = min(img.shape[2], gt.shape[2])  # vb2 cases 02/04/08/10 have one extra GT slice
    return img[:, :, :z], gt[:, :, :z]


def _mid_index(gt: np.ndarray) -> int:
    return int(np.argmax((gt > 0).sum(axis=(0, 1))))


def _mat_volumes(root: Path, slices_per_subject: int, subjects: Sequence[str] | None = None,
                 ) -> Iterator[tuple[Path, np.ndarray, np.ndarray, list[tuple[int, bool]]]]:
    """(file, image volume, label volume, [(slice index, is the mid slice)]) with the ``slices_per_subject``
    sagittal slices around each volume's mid slice (the one with the most labelled pixels)."""
    for p in sorted(root.glob("*.mat")):
        if subjects is not None and p.stem not in subjects:
            continue
        img, gt = _load_mat(p)
        k = _mid_index(gt)
        half = slices_per_subject // 2
        yield p, img, gt, [(j, j == k) for j in range(max(0, k - half), min(gt.shape[2], k + half + 1))]


IVD_TABLE = make_table(DISCS, extra={0: (0, CSF) + BODIES, CODE_CAUDAL: (0, CSF, S1, FAT) + BODIES})
VB_TABLE = make_table(BODIES, extra={CODE_NOT_TARGET: (0,), 0: (0, CSF) + DISCS, CODE_CAUDAL: (0, CSF, S1, FAT) + DISCS})


def load_ivd(root: Path, *, slices_per_subject: int = 3, subjects: Sequence[str] | None = None) -> list[Sample]:
    """Level-specific discs (1=L5/S1 ... 5=L1/L2), 1 mm isotropic."""
    out = []
    mapping = {1: 11, 2: 9, 3: 7, 4: 5, 5: 3}
    for p, img, gt, slices in _mat_volumes(root, slices_per_subject, subjects):
        for j, mid in slices:
            codes = np.zeros(gt.shape[:2], np.uint8)
            for v, c in mapping.items():
                codes[gt[:, :, j] == v] = c
            mark_caudal(codes, _top_row(codes == 11))  # below the top of L5/S1
            out.append(Sample(
                image=to_uint8(img[:, :, j]), codes=codes, table=IVD_TABLE, groups=tuple((c,) for c in DISCS),
                labelled=DISCS, source="ivd", subject=p.stem, name=f"ivd/{p.stem}/z{j}", mid=mid, spacing_mm=(1.0, 1.0),
            ))
    return out


def load_vb(root: Path, *, slices_per_subject: int = 3, subjects: Sequence[str] | None = None) -> list[Sample]:
    """Vertebral bodies T11-L5 (instance ids sorted caudal -> cranial by 3-D centroid: lowest = L5)."""
    out = []
    for p, img, gt, slices in _mat_volumes(root, slices_per_subject, subjects):
        ids = [int(v) for v in np.unique(gt) if v > 0]
        rows = np.arange(gt.shape[0])
        centroid = {v: float((rows[:, None, None] * (gt == v)).sum() / max((gt == v).sum(), 1)) for v in ids}
        order = sorted(ids, key=lambda v: -centroid[v])  # caudal first
        level = {v: (BODIES[::-1][i] if i < 5 else CODE_NOT_TARGET) for i, v in enumerate(order)}
        for j, mid in slices:
            codes = np.zeros(gt.shape[:2], np.uint8)
            for v, c in level.items():
                codes[gt[:, :, j] == v] = c
            l5 = np.nonzero((codes == 10).any(1))[0]
            mark_caudal(codes, float(l5.mean()) if l5.size else None)  # below the middle of L5
            image = img[:, :, j]
            out.append(Sample(
                image=image if image.dtype == np.uint8 else to_uint8(image), codes=codes, table=VB_TABLE,
                groups=tuple((c,) for c in BODIES), labelled=BODIES, source="vb", subject=p.stem,
                name=f"vb/{p.stem}/z{j}", mid=mid, spacing_mm=(1.0, 1.0),
            ))
    return out


def load_mat_generic(root: Path, mapping: dict[int, int], *, slices_per_subject: int = 1, source: str = "mat") -> list[Sample]:
    """Any .mat volumes (I, GT; axis0 head->feet, axis1 anterior->posterior, axis2 sagittal) with a value->class map."""
    table = make_table(sorted(set(mapping.values()) - {0}))
    labelled = tuple(sorted(set(mapping.values()) - {0}))
    out = []
    for p, img, gt, slices in _mat_volumes(root, slices_per_subject):
        for j, mid in slices:
            codes = np.zeros(gt.shape[:2], np.uint8)
            for v, c in mapping.items():
                codes[gt[:, :, j] == v] = c
            out.append(Sample(to_uint8(img[:, :, j]), codes, table, tuple((c,) for c in labelled), labelled, source, p.stem, f"{source}/{p.stem}/z{j}", mid))
    return out


# ----------------------------------------------------------------------------------------------
# vesal (no levels), label maps, LabelMe
# ----------------------------------------------------------------------------------------------

_VESAL_EXTRA = {0: (0, CSF), CODE_CAUDAL: (0, CSF, S1, FAT), CODE_DISC_ANY: (0,) + DISCS, CODE_BONE_ANY: (0,) + BONES}
# Training: every Vesal disc may also be background (thoracic, or outside the network's tighter outline:
# Vesal's polygons run about a pixel outside the disc at 256 px). Scoring: the five lowest are lumbar discs.
VESAL_TABLE = make_table([], extra={**_VESAL_EXTRA, CODE_DISC_LUMBAR: (0,) + DISCS})
VESAL_EVAL_TABLE = make_table([], extra={**_VESAL_EXTRA, CODE_DISC_LUMBAR: DISCS})


def load_vesal(root: Path, *, subjects: Sequence[str] | None = None) -> list[Sample]:
    out = []
    for p in sorted((root / "images").glob("*.png"), key=lambda q: int(q.stem)):
        if subjects is not None and p.stem not in subjects:
            continue
        m = np.load(root / "masks" / f"{p.stem}.npy")
        if not (m == 1).any() or not (m == 2).any():
            continue  # empty / discs-only para-sagittal slices
        codes = np.zeros(m.shape, np.uint8)
        codes[m == 1] = CODE_DISC_ANY
        codes[m == 2] = CODE_BONE_ANY
        discs = _components(m == 1, 30)
        lowest = max(discs, key=lambda t: t[1])[0] if discs else None
        # counted bottom-up as in SPIDER (same merge tolerance relative to the image height)
        for disc, _ in merge_same_height(discs, 25.0 * m.shape[0] / 640)[:5]:
            codes[disc] = CODE_DISC_LUMBAR
        mark_caudal(codes, _top_row(lowest) if lowest is not None else None)
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        out.append(Sample(img, codes, VESAL_TABLE, (), (), "vesal", p.stem, f"vesal/{p.stem}", True,
                          eval_table=VESAL_EVAL_TABLE))
    return out


FULL_TABLE = make_table(range(1, NUM_CLASSES))


def load_labelmap(root: Path, *, labelled: Sequence[int] | None = None, source: str = "labelmap") -> list[Sample]:
    """``images/NAME.png`` + ``labels/NAME.png`` (uint8 class indices 0..13); all classes labelled by default."""
    lab_set = tuple(labelled) if labelled is not None else tuple(range(1, NUM_CLASSES))
    table = make_table(lab_set)
    out = []
    for p in sorted((root / "images").glob("*.png")):
        lp = root / "labels" / p.name
        if not lp.is_file():
            raise DatasetError(f"label map missing for {p}: expected {lp}")
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        lab = cv2.imread(str(lp), cv2.IMREAD_UNCHANGED)
        if lab.ndim != 2 or lab.max() >= NUM_CLASSES:
            raise DatasetError(f"{lp}: a label map must be single-channel with values 0..13")
        out.append(Sample(img, lab.astype(np.uint8), table, tuple((c,) for c in (0,) + lab_set), lab_set, source, p.stem, f"{source}/{p.stem}", True))
    return out


def _labelme_name_to_class(name: str) -> int | None:
    key = name.strip().lower().replace(" ", "").replace("-", "/").replace("_", "/")
    aliases = {"csf": CSF, "cerebrospinalfluid": CSF, "presacralfat": FAT, "preiliacfat": FAT, "fat": FAT, "s1": S1, "sacrum": S1}
    if key in aliases:
        return aliases[key]
    for i, n in enumerate(CLASS_NAMES):
        if key == n.lower().replace(" ", ""):
            return i
    return None


def load_labelme(root: Path, *, source: str = "labelme") -> list[Sample]:
    """LabelMe JSON files under ``root``; the image is ``imagePath`` next to the JSON or ``imageData``."""
    out = []
    for jp in sorted(root.rglob("*.json")):
        d = json.loads(jp.read_text())
        if "shapes" not in d:
            continue
        img = None
        if d.get("imagePath") and (jp.parent / d["imagePath"]).is_file():
            img = cv2.imread(str(jp.parent / d["imagePath"]), cv2.IMREAD_GRAYSCALE)
        elif d.get("imageData"):
            buf = np.frombuffer(base64.b64decode(d["imageData"]), np.uint8)
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise DatasetError(f"{jp}: image not found (imagePath {d.get('imagePath')!r}, no imageData)")
        codes = np.zeros(img.shape, np.uint8)
        for shape in d["shapes"]:
            c = _labelme_name_to_class(str(shape.get("label", "")))
            if c is None:
                raise DatasetError(f"{jp}: unknown label {shape.get('label')!r}; use the 14 class names")
            pts = np.round(np.asarray(shape["points"], np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.fillPoly(codes, [pts], c, shift=4)
        out.append(Sample(img, codes, FULL_TABLE, tuple((c,) for c in range(NUM_CLASSES)), tuple(range(1, NUM_CLASSES)), source, jp.stem, f"{source}/{jp.stem}", True))
    return out


# ----------------------------------------------------------------------------------------------
# phantoms
# ----------------------------------------------------------------------------------------------

PHANTOM_TABLE = make_table(range(1, NUM_CLASSES))


def phantom_sample(seed: int, size: int = 320, subject: str | None = None) -> Sample:
    from inference.synthetic import PhantomOptions, generate_phantom

    p = generate_phantom(seed, PhantomOptions(rows=size, cols=size))
    return Sample(
        image=to_uint8(p.image), codes=p.labels.copy(), table=PHANTOM_TABLE,
        groups=tuple((c,) for c in range(NUM_CLASSES)), labelled=tuple(range(1, NUM_CLASSES)), source="phantom",
        subject=subject or f"seed{seed}", name=f"phantom/{seed}", mid=True, spacing_mm=p.pixel_spacing_mm,
    )


def load_phantoms(count: int, *, seed0: int = 0, size: int = 320, validation: bool = False) -> list[Sample]:
    base = PHANTOM_VAL_SEED_BASE if validation else seed0
    return [phantom_sample(base + i, size, subject=(f"val{i}" if validation else f"seed{base + i}")) for i in range(count)]


# ----------------------------------------------------------------------------------------------
# split
# ----------------------------------------------------------------------------------------------


def split_by_subject(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(train, validation) using the fixed VALIDATION_SUBJECTS; unknown sources all go to train."""
    train, val = [], []
    for s in samples:
        (val if s.subject in VALIDATION_SUBJECTS.get(s.source, frozenset()) else train).append(s)
    return train, val
