"""ΔSI on real discs: the peak difference under a one-pixel erosion / dilation of the real disc masks.

Data (read-only, never copied): ../shared/data/vesal_sag_t2 (npy disc masks), spider/t2space_png (central
slice of each patient), fastcleverseg_lumbar/ivd_t2 (.mat, mid-sagittal slice). The issue's target is a
change of at most 3 grey levels.

The default method registers each disc's outline to the image before it reads the histogram
(quantitation/outline_registration.py: each half of the outline moves by whole pixels to the dark line that
bounds the disc), so a mask one pixel smaller or larger reads the same pixels. Read on the mask as drawn (the
previous default, kept here as ``_mask_as_drawn``), 20 of these 356 discs moved 3.2-12 grey levels; registered,
355 stay within 3. The one exception (``ABOVE_TARGET``, 4.8 levels) is SPIDER patient 209's L5/S1: a
collapsed, steeply tilted disc about 10 px thick, mostly dark with a sparse bright tail; its ring profile has
two competing dark lines. (Before the read-out discounted sparse ends, that tail made it move by 196 levels.)
The node flags such discs (``test_node_flags_exactly_the_discs_above_target``): every result carries its ΔSI
range over the two changed outlines.

Independent checks (perturbations and segmentations the registration was not tuned on): a one-pixel
translation of the mask (one side grows, the other shrinks; ``test_registration_also_steadies_a_shifted_outline``)
and the network's own masks against the annotators' (tests/training/test_shipped_weights.py).
"""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import io, ndimage

from quantitation import quantify_slice
from quantitation import signal_intensity as sig
from quantitation.masks import crop
from quantitation.outline_registration import REGISTRATION_REACH_PX

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing: {path}")
        pytest.skip(f"shared data missing: {path}")
    return path


def _components(mask: np.ndarray, min_px: int) -> list[np.ndarray]:
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n) if int((lab == i).sum()) >= min_px]


@lru_cache(maxsize=None)
def _cases(source: str) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(disc name, image, disc mask) of every real disc of ``source``; the name is the file (VESAL,
    fastcleverseg) or SPIDER subject, plus the component number or the fastcleverseg level."""
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    if source == "vesal":
        root = _need(DATA / "vesal_sag_t2")
        for f in sorted((root / "masks").glob("*.npy")):
            img = np.array(Image.open(root / "images" / f"{f.stem}.png").convert("L"))
            out += [(f"{f.stem}#{i}", img, m) for i, m in enumerate(_components(np.load(f) == 1, 50))]
    elif source == "spider":
        root = _need(DATA / "spider" / "t2space_png")
        with (root / "manifest.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        by: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            by.setdefault(r["subject"], []).append(r)
        for subject, rs in by.items():
            r = sorted(rs, key=lambda r: int(r["slice"]))[len(rs) // 2]
            img = np.array(Image.open(root / r["image_file"]).convert("L"))
            mask = np.array(Image.open(root / r["mask_file"]).convert("L"))
            out += [(f"{subject}#{i}", img, m) for i, m in enumerate(_components(mask == 29, 200))]
    else:
        root = _need(DATA / "fastcleverseg_lumbar" / "ivd_t2")
        for f in sorted(root.glob("*.mat")):
            mat = io.loadmat(f)
            vol, gt = mat["I"], mat["GT"]
            k = int(np.argmax((gt > 0).sum(axis=(0, 1))))
            sl = vol[:, :, k].astype(np.float64)
            img = np.clip(np.rint(sl / sl.max() * 255), 0, 255).astype(np.uint8)
            out += [(f"{f.stem}/{lv}", img, gt[:, :, k] == lv) for lv in range(1, 6) if int((gt[:, :, k] == lv).sum()) >= 30]
    return tuple(out)


_MARGIN = REGISTRATION_REACH_PX + 3  # room for the registration around the mask grown by one pixel


def _crop(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = crop(m, _MARGIN)
    return img[c.box], c.mask


def _default(img: np.ndarray, m: np.ndarray) -> float:
    """The default method's peak difference: outline registered to the image."""
    return sig.registered_disc_peaks(img, m).difference


def _mask_as_drawn(img: np.ndarray, m: np.ndarray) -> float:
    """The same read-out on the mask as drawn (the default method before the registration)."""
    return sig.disc_peaks(img[m], sig.disc_weights(m)).difference


def _original(img: np.ndarray, m: np.ndarray) -> float:
    return sig.original_peaks(img[m]).difference


def _changes(source: str, fn) -> dict[str, float]:
    """Disc name -> largest change of ``fn`` under a one-pixel erosion or dilation of its mask."""
    out = {}
    for name, img, m in _cases(source):
        img, m = _crop(img, m)
        er, di = ndimage.binary_erosion(m), ndimage.binary_dilation(m)
        if er.sum() < 10:
            continue
        base = fn(img, m)
        out[name] = max(abs(fn(img, er) - base), abs(fn(img, di) - base))
    return out


# The discs whose peak difference moves more than 3 grey levels (measured change, levels), named by file or
# SPIDER subject and component number (fastcleverseg: file/level). Read on the mask as drawn, 20 did (VESAL
# 15#0 15#3 16#0 16#1 16#6 18#2 2#0 3#0 8#2 8#5, SPIDER 22#1 41#7 141#4 141#6 191#2 200#1 200#2 209#1 209#3,
# fastcleverseg 42/1; 3.2-12.0 levels).
ABOVE_TARGET: dict[str, dict[str, float]] = {"vesal": {}, "spider": {"209#7": 4.8}, "fastcleverseg": {}}


# measured on this data: share of discs within 3 grey levels (registered / mask as drawn / original heuristic),
# median and largest change: vesal 1.00 / 0.91 / 0.26, 0.02, max 1.0; spider 1.00 (all but 209#7) / 0.96 / 0.59,
# 0.11; fastcleverseg 1.00 / 0.95 / 0.70, 0.04, max 0.4
@pytest.mark.parametrize("source", ["vesal", "spider", "fastcleverseg"])
def test_peak_difference_stable_under_one_pixel_erosion_dilation(source: str) -> None:
    changes = _changes(source, _default)
    default = np.array(list(changes.values()))
    assert default.size >= {"vesal": 110, "spider": 226, "fastcleverseg": 20}[source]
    above = {name: round(c, 1) for name, c in changes.items() if c > 3.0}
    assert above.keys() == ABOVE_TARGET[source].keys(), f"{source}: discs moved more than 3 grey levels: {above}"
    for name, measured in ABOVE_TARGET[source].items():
        assert changes[name] <= measured + 1.0, f"{source} disc {name} moved {changes[name]:.1f} (was {measured})"
    assert float(np.median(default)) <= 0.3
    as_drawn = np.array(list(_changes(source, _mask_as_drawn).values()))
    original = np.array(list(_changes(source, _original).values()))
    share = float(np.mean(default <= 3.0))
    assert share > float(np.mean(as_drawn <= 3.0)) and float(np.median(default)) < float(np.median(as_drawn))
    assert share >= float(np.mean(original <= 3.0)) + 0.25  # far more stable than the original (0.26-0.70)


def _on_model_grid(img: np.ndarray, m: np.ndarray, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The slice resampled as the node does for the network (longer side to ``size``: area averaging when
    shrinking, bilinear when enlarging) and the mask resampled bilinearly and cut at 0.5 (a smooth outline,
    like the network's, on the grid where the node measures ΔSI)."""
    h, w = m.shape
    nh, nw = round(h * size / max(h, w)), round(w * size / max(h, w))
    interp = cv2.INTER_AREA if nh < h and nw < w else cv2.INTER_LINEAR
    grid_img = np.clip(np.rint(cv2.resize(img.astype(np.float32), (nw, nh), interpolation=interp)), 0, 255)
    grid_mask = cv2.resize(m.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR) >= 0.5
    return grid_img.astype(np.uint8), grid_mask


@pytest.mark.parametrize("source", ["vesal", "spider", "fastcleverseg"])
def test_peak_difference_stable_on_the_grid_the_node_measures_on(source: str) -> None:
    """The node measures on the network's 512 x 512 grid: VESAL (256 px) and fastcleverseg (221 px) slices
    are enlarged about twofold there, SPIDER's (512 x 640) shrunk to 0.8, so a one-pixel change is half a
    native pixel or 1.25 of one. Measured, registered / as drawn: vesal 110 / 108 of 110 within 3 grey
    levels, spider 225 / 214 of 226, fastcleverseg 20 / 19 of 20; the same single exception (4.4 levels)."""
    changes: dict[str, float] = {}
    as_drawn: list[float] = []
    for name, img, m in _cases(source):
        img, m = _crop(*_on_model_grid(img, m))
        er, di = ndimage.binary_erosion(m), ndimage.binary_dilation(m)
        if er.sum() < 10:
            continue
        for fn in (_default, _mask_as_drawn):
            base = fn(img, m)
            change = max(abs(fn(img, er) - base), abs(fn(img, di) - base))
            if fn is _default:
                changes[name] = change
            else:
                as_drawn.append(change)
    assert len(changes) >= {"vesal": 110, "spider": 226, "fastcleverseg": 20}[source]
    above = {name for name, c in changes.items() if c > 3.0}
    assert above == set(ABOVE_TARGET[source]), above
    assert float(np.mean(np.array(as_drawn) <= 3.0)) < 1.0  # read on the masks as drawn, some move (measured)


@pytest.mark.parametrize("source", ["vesal", "spider", "fastcleverseg"])
def test_node_flags_exactly_the_discs_above_target(source: str) -> None:
    """``quantify_slice`` reports each disc's ΔSI range over its outline shrunk and grown by one pixel and
    gives a reason exactly where the peak difference moves more than 3 grey levels: on these real discs
    the named ``ABOVE_TARGET`` ones and no other. The disc (as L3/L4) and a ``_MARGIN``-pixel margin of its real
    image are placed on a canvas with a uniform CSF block (level 200) as the reference."""
    flagged, measured = set(), 0
    for name, img, m in _cases(source):
        img, m = _crop(img, m)
        if ndimage.binary_erosion(m).sum() < 10:
            continue
        h, w = m.shape
        canvas = np.zeros((h + 40, w + 40), np.uint8)
        labels = np.zeros(canvas.shape, np.uint8)
        canvas[:h, :w], labels[:h, :w] = img, np.where(m, 7, 0)
        canvas[h + 10 : h + 30, w + 10 : w + 30], labels[h + 10 : h + 30, w + 10 : w + 30] = 200, 1
        disc = quantify_slice(labels, canvas, (1.0, 1.0)).discs[2]
        assert disc.level == "L3/L4" and disc.delta_si is not None
        lo, hi = disc.delta_si_outline_range
        assert lo <= disc.delta_si <= hi
        measured += 1
        if any(r.startswith("ΔSI depends on the disc outline") for r in disc.reasons):
            flagged.add(name)
            assert (hi - lo) * 200 / 255 > 3.0
    assert measured == len(_changes(source, _default))
    assert flagged == set(ABOVE_TARGET[source])


def _shift_changes(source: str, fn) -> np.ndarray:
    """Largest change of ``fn`` when the mask is translated by one pixel up, down, left or right."""
    out = []
    for _, img, m in _cases(source):
        img, m = _crop(img, m)
        if ndimage.binary_erosion(m, iterations=2).sum() < 10:
            continue
        base = fn(img, m)
        out.append(max(abs(fn(img, np.roll(m, s, axis=a)) - base) for a in (0, 1) for s in (-1, 1)))
    return np.array(out)


@pytest.mark.parametrize(("source", "min_share"), [("vesal", 0.94), ("spider", 0.99), ("fastcleverseg", 1.0)])
def test_registration_also_steadies_a_shifted_outline(source: str, min_share: float) -> None:
    """A perturbation the registration was not built for: the mask moved by one pixel, so one side of the
    outline grows while the other shrinks. Measured share within 3 grey levels, registered / as drawn:
    vesal 0.95 / 0.92, spider 1.00 / 0.94, fastcleverseg 1.00 / 0.80. (Eroded or dilated by two pixels:
    0.98 / 0.59, 0.96 / 0.84, 0.95 / 0.30.)"""
    registered, as_drawn = _shift_changes(source, _default), _shift_changes(source, _mask_as_drawn)
    share = float(np.mean(registered <= 3.0))
    assert share >= min_share
    assert share > float(np.mean(as_drawn <= 3.0))
    assert float(np.median(registered)) <= float(np.median(as_drawn))
