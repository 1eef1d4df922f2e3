"""``quantify_slice``: one mid-sagittal label map in, one result per disc and vertebra out.

Each disc and each quantity is measured independently: a structure that cannot be measured gets a
status and a reason, the others keep their values. Bad anatomy never raises; only wrong input types or
shapes raise ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from quantitation import geometry_bianque2022 as g_orig
from quantitation import geometry_default as g_def
from quantitation import labels as lab
from quantitation import references as ref
from quantitation import signal_intensity as sig
from quantitation.grading import deviations, grade_group, grade_group_label
from quantitation.geometry_types import (
    DiscAxis,
    DiscGeometryMethod,
    DiscHeight,
    DiscWidth,
    GeometryError,
    Point,
    VertebraGeometry,
)
from quantitation.masks import BoolArray, chord, crop, fill_holes, outline
from quantitation.outline_registration import REGISTRATION_REACH_PX
from quantitation.results import (
    DISC_LEVELS,
    VERTEBRA_LEVELS,
    DiscResult,
    Method,
    SliceQuantitation,
    Status,
    VertebraResult,
)

_SIGNAL_MIN_PIXELS = 10  # fewer disc / reference pixels than this: no histogram measure
# A disc whose raw peak difference moves by more than this many grey levels when its outline shrinks or grows
# by one pixel gets a reason saying so (issue 4's stability target; with the outline registered to the image, 1 of
# 356 annotated real discs exceeds it, 20 did read on the masks as drawn).
OUTLINE_SENSITIVITY_LIMIT = 3.0
OUTLINE_SENSITIVE_REASON = "ΔSI depends on the disc outline"  # how that reason begins
# The presacral fat region must be at least this share of a lumbar body's area to serve as a reference: on
# real slices the network (which learnt fat from phantoms only) leaves fragments of 17-73 pixels, about
# 1-5 % of a body, whose levels ranged from 103 to 226; the drawn phantom's fat is about 20 %.
FAT_MIN_BODY_SHARE = 0.1


# ------------------------------------------------------------------------------------------- validation ----
def _validate(
    label_map: object, image_8bit: object, pixel_spacing_mm: object, method: object, sex: object, age: object,
    original_image: object,
) -> tuple[NDArray[np.integer], NDArray[np.uint8], tuple[float, float], Method]:
    if not isinstance(label_map, np.ndarray) or label_map.ndim != 2:
        raise ValueError("label_map must be a 2-D NumPy array (rows x columns) of class indices 0..13")
    if not np.issubdtype(label_map.dtype, np.integer) and label_map.dtype != np.bool_:
        raise ValueError(f"label_map must hold integer class indices, got dtype {label_map.dtype}")
    if label_map.size and (int(label_map.min()) < 0 or int(label_map.max()) >= lab.NUM_CLASSES):
        raise ValueError(f"label_map values must be in 0..{lab.NUM_CLASSES - 1}")
    if not isinstance(image_8bit, np.ndarray):
        raise ValueError("image_8bit must be a NumPy array")
    if image_8bit.dtype != np.uint8:
        raise ValueError(f"image_8bit must be 8-bit (uint8), got dtype {image_8bit.dtype}")
    if image_8bit.ndim == 3 and image_8bit.shape[2] == 3:
        image_8bit = cv2.cvtColor(np.ascontiguousarray(image_8bit), cv2.COLOR_BGR2GRAY)  # as the original
    if image_8bit.ndim != 2 or image_8bit.shape != label_map.shape:
        raise ValueError(
            f"image_8bit must have the label map's shape {label_map.shape} (or be BGR of that size), "
            f"got {image_8bit.shape}"
        )
    if original_image is not None and (not isinstance(original_image, np.ndarray) or original_image.ndim not in (2, 3)):
        raise ValueError("original_image must be a 2-D (or 3-channel) NumPy array or None")
    try:
        sr, sc = (float(v) for v in pixel_spacing_mm)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError("pixel_spacing_mm must be a pair (row spacing, column spacing) in mm") from exc
    if not (math.isfinite(sr) and math.isfinite(sc) and sr > 0 and sc > 0):
        raise ValueError(f"pixel spacing must be two positive numbers in mm, got {pixel_spacing_mm!r}")
    try:
        m = Method(method)
    except ValueError as exc:
        raise ValueError(f"unknown quantitation method {method!r}; use 'default' or 'bianque2022'") from exc
    if sex is not None and sex not in ("F", "M"):
        raise ValueError(f"sex must be 'F', 'M' or None, got {sex!r}")
    if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float)) or not math.isfinite(age)):
        raise ValueError(f"age_years must be a finite number or None, got {age!r}")
    return label_map, image_8bit, (sr, sc), m


# ------------------------------------------------------------------------------------------------ helpers ---
@dataclass(frozen=True)
class _Vert:
    geometry: VertebraGeometry | None
    reason: str | None


def _centroids_mm(masks: dict[str, BoolArray], spacing: tuple[float, float]) -> dict[str, NDArray[np.float64] | None]:
    """Centroid (mm) of every vertebra and disc mask."""
    out: dict[str, NDArray[np.float64] | None] = {}
    for name, mk in masks.items():
        c = crop(mk, 0)
        if c is None:
            out[name] = None
            continue
        rows, cols = np.nonzero(c.mask)
        out[name] = np.array([(rows.mean() + c.r0) * spacing[0], (cols.mean() + c.c0) * spacing[1]])
    return out


def _cranial_direction(
    level: str, centroids: dict[str, NDArray[np.float64] | None]
) -> tuple[float, float]:
    """Unit vector (mm) from a body towards its cranial neighbour, from the neighbours' centroids."""
    order = ("L1", "L1/L2", "L2", "L2/L3", "L3", "L3/L4", "L4", "L4/L5", "L5", "L5/S1", "S1")
    i = order.index(level)
    me = centroids.get(level)
    above_v = order[i - 2] if i >= 2 else None
    below_v = order[i + 2] if i + 2 < len(order) else None
    above_d = order[i - 1] if i >= 1 else None
    below_d = order[i + 1] if i + 1 < len(order) else None
    up = centroids.get(above_v) if above_v else None
    down = centroids.get(below_v) if below_v else None
    if level == "S1":  # the L5/S1 disc sits on the endplate; prefer it
        up = centroids.get("L5/S1") if centroids.get("L5/S1") is not None else up
    if up is None and above_d:
        up = centroids.get(above_d)
    if down is None and below_d:
        down = centroids.get(below_d)
    vec = None
    if level != "S1" and up is not None and down is not None:
        vec = up - down
    elif up is not None and me is not None:
        vec = up - me
    elif down is not None and me is not None:
        vec = me - down
    if vec is None or float(np.hypot(*vec)) == 0:
        return (-1.0, 0.0)
    vec = vec / float(np.hypot(*vec))
    return (float(vec[0]), float(vec[1]))


def _measure_vertebra(
    level: str,
    mask: BoolArray,
    m: Method,
    centroids: dict[str, NDArray[np.float64] | None],
    spacing: tuple[float, float],
) -> _Vert:
    if not mask.any():
        return _Vert(None, f"{level} is not segmented")
    try:
        if m is Method.BIANQUE2022:
            return _Vert(g_orig.vertebra(mask, spacing, s1_rule=level == "S1"), None)
        limit = None if level == "S1" else g_def.MAX_TILT_DEG  # the sacrum may slope at any angle
        return _Vert(g_def.vertebra(mask, spacing, _cranial_direction(level, centroids), max_tilt_deg=limit), None)
    except GeometryError as exc:
        return _Vert(None, f"{level}: {exc}")


def _height_line(
    disc: BoolArray, axis: DiscAxis | None, spacing: tuple[float, float]
) -> tuple[Point, Point] | None:
    """A DH line through the disc centre, perpendicular to the disc axis, upper to lower boundary.
    Without an axis (a neighbour is missing), or when the axis line misses the disc, the disc's own
    principal axis and centroid are used."""
    if axis is not None:
        (ah, aw), (ph, pw) = axis.anterior_mid, axis.posterior_mid
        line = _perpendicular_chord(
            disc, ((ah + ph) / 2, (aw + pw) / 2), np.array([(ph - ah) * spacing[0], (pw - aw) * spacing[1]]), spacing
        )
        if line is not None:
            return line
    c = crop(disc, 1)
    if c is None:
        return None
    rows, cols = np.nonzero(c.mask)
    if rows.size < 3:
        return None
    pts = np.stack([(rows + c.r0) * spacing[0], (cols + c.c0) * spacing[1]], axis=1)
    mean = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - mean, full_matrices=False)
    e = vt[0] if vt[0][1] >= 0 else -vt[0]
    return _perpendicular_chord(disc, (float(mean[0] / spacing[0]), float(mean[1] / spacing[1])), e, spacing)


def _perpendicular_chord(
    disc: BoolArray, centre: Point, axis_mm: NDArray[np.float64], spacing: tuple[float, float]
) -> tuple[Point, Point] | None:
    n = np.array([axis_mm[1], -axis_mm[0]])
    if n[0] < 0:  # point caudally: start on the upper boundary
        n = -n
    ch = chord(disc, centre, (float(n[0]), float(n[1])), spacing)
    return None if ch is None else (ch.start, ch.end)


def _reference_level(mask: BoolArray, grey: NDArray[np.uint8], m: Method, *, bright_class: bool = False) -> float:
    """Reference grey level of a region; ``bright_class`` (the CSF, default method): of its bright Otsu class."""
    if m is Method.BIANQUE2022:
        return float(sig.original_mode(grey[mask]))
    c = crop(mask, 1)
    assert c is not None
    window = grey[c.box]
    level = sig.bright_class_level if bright_class else sig.robust_level
    return level(window[c.mask], weights=sig.rim_weights(c.mask))


# classes a disc's outline may not grow into when it is registered to the image (default method)
_NO_GROWTH_CLASSES = (lab.CSF, lab.FAT, *lab.DISC_CLASS.values())


def _region_peaks(window: NDArray[np.uint8], mask: BoolArray, m: Method, room: BoolArray | None) -> sig.Peaks:
    if m is Method.BIANQUE2022:
        return sig.original_peaks(window[mask])  # row-major order within the crop = within the image
    return sig.registered_disc_peaks(window, mask, room)  # the mask itself is always room


def _disc_signal(mask: BoolArray, grey: NDArray[np.uint8], m: Method, labels: NDArray[np.integer]
                 ) -> tuple[sig.Peaks, tuple[float, ...]]:
    """The disc's peaks, and the raw peak difference on its outline shrunk and grown by one pixel (4-connected
    erosion and dilation; a shrunk outline with fewer than ``_SIGNAL_MIN_PIXELS`` pixels is left out). The
    default method registers each outline to the image, growing it into its own disc, background and bone but
    not into the CSF, the presacral fat or another disc."""
    c = crop(mask, 2 if m is Method.BIANQUE2022 else REGISTRATION_REACH_PX + 3)
    assert c is not None
    window = grey[c.box]
    room = None if m is Method.BIANQUE2022 else ~np.isin(labels[c.box], _NO_GROWTH_CLASSES) | c.mask
    peaks = _region_peaks(window, c.mask, m, room)
    changed: list[float] = []
    for other in (ndimage.binary_erosion(c.mask), ndimage.binary_dilation(c.mask)):
        if np.count_nonzero(other) < _SIGNAL_MIN_PIXELS:
            continue
        try:
            changed.append(_region_peaks(window, other, m, room).difference)
        except ValueError:  # e.g. only saturated pixels left
            continue
    return peaks, tuple(changed)


def _outline_sensitivity(peaks: sig.Peaks, changed: tuple[float, ...], csf_ref: float
                         ) -> tuple[tuple[float, float], str | None]:
    """ΔSI range over the outline and its one-pixel erosion / dilation, and a reason when the raw peak
    difference moves by more than ``OUTLINE_SENSITIVITY_LIMIT`` grey levels there."""
    values = [sig.delta_si(d, csf_ref) for d in (peaks.difference, *changed)]
    lo, hi = min(values), max(values)
    moved = max((abs(d - peaks.difference) for d in changed), default=0.0)
    if moved <= OUTLINE_SENSITIVITY_LIMIT:
        return (lo, hi), None
    groups = sorted({grade_group(v)[0] for v in (lo, hi)})
    grade = (f"; grade group {grade_group_label(groups[0])} to {grade_group_label(groups[-1])} over that range"
             if len(groups) > 1 else "")
    return (lo, hi), (f"{OUTLINE_SENSITIVE_REASON}: {lo:.1f} to {hi:.1f} when the outline is one pixel "
                      f"smaller or larger (the peak difference moves {moved:.1f} grey levels, more than "
                      f"{OUTLINE_SENSITIVITY_LIMIT:g}){grade}")


def _status(measured: list[bool]) -> Status:
    if all(measured):
        return Status.OK
    if any(measured):
        return Status.PARTIAL
    return Status.FAILED


# ------------------------------------------------------------------------------------------------ public ----
# A lumbar body whose height differs from the median of the other measured lumbar bodies by more than
# this factor is flagged (normal L1-L5 heights differ by about 10 %): an incompletely segmented or merged
# body, or a real compression fracture; either way a reader should look.
HEIGHT_PLAUSIBLE_RANGE = (0.75, 1.3)
LUMBAR_LEVELS = tuple(level for level in VERTEBRA_LEVELS if level != "S1")


def implausible_heights(heights_mm: dict[str, float]) -> dict[str, str]:
    """Level -> reason for L1-L5 bodies whose height is out of ``HEIGHT_PLAUSIBLE_RANGE`` of the others'
    median (needs at least three other measured lumbar bodies; the sacrum is never compared)."""
    lumbar = {k: v for k, v in heights_mm.items() if k in LUMBAR_LEVELS and v > 0}
    out: dict[str, str] = {}
    for level, height in lumbar.items():
        others = [v for k, v in lumbar.items() if k != level]
        if len(others) < 3:
            continue
        median = float(np.median(others))
        ratio = height / median
        if not HEIGHT_PLAUSIBLE_RANGE[0] <= ratio <= HEIGHT_PLAUSIBLE_RANGE[1]:
            out[level] = (f"height {height:.1f} mm is {ratio:.0%} of the other lumbar bodies' median ({median:.1f} mm): "
                          "incomplete or merged segmentation, or a compression fracture; check the image")
    return out


def quantify_slice(
    label_map: NDArray[np.integer],
    image_8bit: NDArray[np.uint8],
    pixel_spacing_mm: tuple[float, float],
    *,
    method: str | Method = "default",
    sex: str | None = None,
    age_years: float | None = None,
    original_image: NDArray[np.generic] | None = None,
) -> SliceQuantitation:
    """Measure the five lumbar discs of one sagittal slice.

    ``label_map``: (H, W) class indices in the spec order (0 background, 1 CSF, 2 L1, 3 L1/L2, ..., 12 S1,
    13 presacral fat), rows head->feet, columns anterior->posterior. ``image_8bit``: the 8-bit image the
    network saw before CLAHE, same shape (ΔSI is measured on it); a BGR array is converted as the original
    code does. ``pixel_spacing_mm``: (row, column) spacing in mm of the label-map grid, i.e. the source
    PixelSpacing times the resampling factor of the model grid (padding does not change it).
    ``original_image`` is accepted for provenance and not used by either method (both measure ΔSI on
    ``image_8bit``, spec 2.8). ``method``: "default" (sound definitions, lengths in mm) or "bianque2022"
    (the original definitions, DH in pixels of the 512 grid with its 0.8 factor); recorded in every result.
    ``sex`` ("F"/"M") selects the sex-specific references (sex code 0 = female, 1 = male); ``age_years`` is
    recorded only (no reference uses it). Units: ``*_mm`` in mm, ``dh_px`` in pixels of this grid along the
    height direction, DHI/HDR unitless, ΔSI on the CSF-referenced 0..255 scale; ``grade_z`` is signed,
    (ΔSI - group mean) / group SD.

    Never raises for anatomy: every disc and vertebra gets a status and reasons. Raises ``ValueError`` only
    for wrong input types or shapes.
    """
    labels, grey, spacing, m = _validate(label_map, image_8bit, pixel_spacing_mm, method, sex, age_years, original_image)
    warnings: list[str] = []
    masks = {name: labels == cls for name, cls in {**lab.VERTEBRA_CLASS, **lab.DISC_CLASS}.items()}
    csf = labels == lab.CSF
    fat = labels == lab.FAT

    # ---- references (CSF, fat) ----
    csf_ref: float | None = None
    csf_reason: str | None = None
    csf_values = grey[csf]
    if csf_values.size < _SIGNAL_MIN_PIXELS:
        csf_reason = f"CSF mask has {csf_values.size} pixels: no ΔSI reference"
    else:
        csf_ref = _reference_level(csf, grey, m, bright_class=True)
        if csf_ref <= 0:
            csf_reason = "CSF reference grey level is 0: no ΔSI reference"
            csf_ref = None
    fat_ref: float | None = None
    n_fat = int(np.count_nonzero(fat))
    body_px = [n for n in (int(np.count_nonzero(masks[v])) for v in LUMBAR_LEVELS) if n > 0]
    min_fat = max(_SIGNAL_MIN_PIXELS, FAT_MIN_BODY_SHARE * float(np.median(body_px)) if body_px else 0.0)
    if n_fat >= min_fat:
        fat_ref = _reference_level(fat, grey, m)
        if fat_ref <= 0:
            fat_ref = None
    elif n_fat >= _SIGNAL_MIN_PIXELS:
        warnings.append(f"presacral fat region of {n_fat} pixels is under {FAT_MIN_BODY_SHARE:.0%} of a vertebral "
                        "body: no fat reference")
    if csf_reason:
        warnings.append(csf_reason)

    # ---- vertebrae ----
    centroids = _centroids_mm(masks, spacing)
    verts = {level: _measure_vertebra(level, masks[level], m, centroids, spacing) for level in VERTEBRA_LEVELS}
    implausible = implausible_heights({level: v.geometry.height_mm for level, v in verts.items() if v.geometry})
    vert_results = [
        VertebraResult(level=level, status=Status.FAILED, reasons=(v.reason or "",))
        if v.geometry is None
        else VertebraResult(
            level=level,
            status=Status.OK,
            corners=v.geometry.corners,
            height_mm=v.geometry.height_mm,
            height_px=v.geometry.height_px,
            reasons=(implausible[level],) if level in implausible else (),
        )
        for level, v in verts.items()
    ]
    # the references' DH/DHI/HDR were measured with the original definitions; with the default method
    # the deviations use a side measurement with those definitions (only when a sex is known)
    compat_verts: dict[str, _Vert] = {}
    if m is Method.DEFAULT and sex is not None:
        compat_verts = {
            level: _measure_vertebra(level, masks[level], Method.BIANQUE2022, centroids, spacing)
            for level in VERTEBRA_LEVELS
        }
    grid_is_512 = labels.shape == ref.DH_REFERENCE_GRID
    if sex is not None and not grid_is_512:
        warnings.append(
            f"DH reference is in pixels of a 512x512 image; the label map is {labels.shape[0]}x{labels.shape[1]}, "
            "so no DH deviation is reported"
        )
    if sex is None:
        warnings.append("sex unknown: DH, DHI and HDR deviations need a sex-specific reference and are omitted")

    geo_mod: DiscGeometryMethod = g_orig if m is Method.BIANQUE2022 else g_def  # type: ignore[assignment]
    discs: list[DiscResult] = []
    for level in DISC_LEVELS:
        disc = _disc(level, m, geo_mod, masks, verts, compat_verts, grey, csf_ref, csf_reason, fat_ref, spacing, sex,
                     grid_is_512, labels)
        used = lab.DISC_NEIGHBOURS[level][:1] if level == "L5/S1" else lab.DISC_NEIGHBOURS[level]
        doubtful = [v for v in used if v in implausible]
        if disc.dhi is not None and doubtful:
            note = f"DHI uses the height of {' and '.join(doubtful)}, which looks implausible (see the vertebra)"
            disc = replace(disc, reasons=(*disc.reasons, note))
        discs.append(disc)
    return SliceQuantitation(
        method=m,
        discs=tuple(discs),
        vertebrae=tuple(vert_results),
        csf_reference=csf_ref,
        fat_reference=fat_ref,
        pixel_spacing_mm=spacing,
        sex=sex,
        age_years=None if age_years is None else float(age_years),
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class _Geo:
    axis: DiscAxis | None
    dh_px: float | None
    dh_mm: float | None
    wd_big_px: float | None
    wd_big_mm: float | None
    dhi: float | None
    hdr: float | None
    reasons: tuple[str, ...]


def _disc_geometry(
    level: str, geo_mod: DiscGeometryMethod, disc: BoolArray, verts: dict[str, _Vert], spacing: tuple[float, float]
) -> _Geo:
    upper, lower = lab.DISC_NEIGHBOURS[level]
    reasons: list[str] = []
    gu, gl = verts[upper].geometry, verts[lower].geometry
    if gu is None or gl is None:
        for v in (verts[upper], verts[lower]):
            if v.geometry is None:
                reasons.append(f"no disc axis: {v.reason}")
        return _Geo(None, None, None, None, None, None, None, tuple(reasons))
    axis = geo_mod.disc_axis(gu, gl, spacing)
    if abs(axis.tilt_deg) > g_def.MAX_TILT_DEG:
        reasons.append(f"disc axis tilt {axis.tilt_deg:.0f} degrees is beyond {g_def.MAX_TILT_DEG:.0f} degrees")
        return _Geo(axis, None, None, None, None, None, None, tuple(reasons))
    dh: DiscHeight | None = None
    wd: DiscWidth | None = None
    try:
        dh = geo_mod.disc_height(disc, axis, spacing)
    except GeometryError as exc:
        reasons.append(f"DH: {exc}")
    try:
        wd = geo_mod.wd_big(disc, axis, spacing)
    except GeometryError as exc:
        reasons.append(f"WD_big/HDR: {exc}")
    original = geo_mod is g_orig  # the original works in pixels throughout; ratios are then px / px
    hdr = dhi = None
    if dh is not None:
        h = dh.dh_px if original else dh.dh_mm
        hv_u = gu.height_px if original else gu.height_mm
        hv_l = gl.height_px if original else gl.height_mm
        if wd is not None:
            w = wd.wd_big_px if original else wd.wd_big_mm
            hdr = h / w if w > 0 else None
        if level == "L5/S1":  # spec 5.6: DH / HV(L5); the S1 height is deliberately unused
            dhi = h / hv_u if hv_u > 0 else None
        else:
            dhi = 2 * h / (hv_u + hv_l) if hv_u + hv_l > 0 else None
    return _Geo(
        axis,
        dh.dh_px if dh else None,
        dh.dh_mm if dh else None,
        wd.wd_big_px if wd else None,
        wd.wd_big_mm if wd else None,
        dhi,
        hdr,
        tuple(reasons),
    )


def _disc(
    level: str,
    m: Method,
    geo_mod: DiscGeometryMethod,
    masks: dict[str, BoolArray],
    verts: dict[str, _Vert],
    compat_verts: dict[str, _Vert],
    grey: NDArray[np.uint8],
    csf_ref: float | None,
    csf_reason: str | None,
    fat_ref: float | None,
    spacing: tuple[float, float],
    sex: str | None,
    grid_is_512: bool,
    labels: NDArray[np.integer],
) -> DiscResult:
    raw = masks[level]
    if not raw.any():
        return DiscResult(level=level, method=m, status=Status.FAILED, reasons=(f"{level} disc is not segmented",))
    reasons: list[str] = []
    disc = raw if m is Method.BIANQUE2022 else fill_holes(raw)
    geo = _disc_geometry(level, geo_mod, disc, verts, spacing)
    reasons.extend(geo.reasons)

    # ---- signal ----
    n_px = int(np.count_nonzero(raw))
    d_si = d_si_fat = None
    outline_range: tuple[float, float] | None = None
    if n_px < _SIGNAL_MIN_PIXELS:
        reasons.append(f"ΔSI: disc mask has only {n_px} pixels")
    else:
        peaks: sig.Peaks | None = None
        try:
            peaks, changed = _disc_signal(raw, grey, m, labels)
        except ValueError as exc:
            reasons.append(f"ΔSI: {exc}")
        if peaks is not None:
            if csf_ref is not None:
                d_si = sig.delta_si(peaks.difference, csf_ref)
                outline_range, sensitive = _outline_sensitivity(peaks, changed, csf_ref)
                if sensitive:
                    reasons.append(sensitive)
            else:
                reasons.append(f"ΔSI: {csf_reason}")
            if m is Method.DEFAULT and fat_ref is not None:
                d_si_fat = sig.delta_si(peaks.difference, fat_ref)
    group = z = None
    if d_si is not None:
        group, z = grade_group(d_si)

    # ---- deviations ----
    dev_dh = dev_dhi = dev_hdr = None
    note = ""
    if m is Method.BIANQUE2022:
        dev_dh, dev_dhi, dev_hdr = geo.dh_px, geo.dhi, geo.hdr
    elif sex is not None:
        compat = _disc_geometry(level, g_orig, raw, compat_verts, spacing)  # type: ignore[arg-type]
        dev_dh, dev_dhi, dev_hdr = compat.dh_px, compat.dhi, compat.hdr
        note = "compared value measured with the bianque2022 definitions, as the reference was"
    devs = deviations(
        level,
        sex,
        delta_si=d_si,
        dh_px_512=dev_dh if grid_is_512 else None,
        dhi=dev_dhi,
        hdr=dev_hdr,
        note=note,
    )
    c = crop(disc, 1)
    return DiscResult(
        level=level,
        method=m,
        status=_status([geo.dh_mm is not None, geo.dhi is not None, geo.hdr is not None, d_si is not None]),
        reasons=tuple(reasons),
        anterior_mid=geo.axis.anterior_mid if geo.axis else None,
        posterior_mid=geo.axis.posterior_mid if geo.axis else None,
        height_line=_height_line(disc, geo.axis, spacing),
        outline=outline(c.mask, c.r0, c.c0) if c is not None else None,
        dh_mm=geo.dh_mm,
        dh_px=geo.dh_px,
        dhi=geo.dhi,
        hdr=geo.hdr,
        wd_small_mm=geo.axis.wd_small_mm if geo.axis and geo.dh_mm is not None else None,
        wd_big_mm=geo.wd_big_mm,
        delta_si=d_si,
        delta_si_fat=d_si_fat,
        delta_si_outline_range=outline_range,
        grade_group=group,
        grade_z=z,
        deviations=devs,
    )
