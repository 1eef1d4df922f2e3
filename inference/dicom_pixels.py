"""From a pydicom dataset to an 8-bit greyscale frame, as a scanner's BMP export would look.

Modality LUT (rescale slope/intercept or Modality LUT Sequence, incl. Enhanced MR Pixel Value
Transformation), then the file's VOI window (Window Center/Width, incl. Enhanced MR Frame VOI LUT), or a
robust percentile window (1st-99.5th percentile) when the file has none or when its window would leave
too little contrast (:func:`window_problem`). MONOCHROME1 is inverted.
Also reads the geometry attributes (ImageOrientationPatient, PixelSpacing) of one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, pixel_array

PERCENTILE_WINDOW = (1.0, 99.5)


class PreprocessingError(ValueError):
    """The DICOM slice cannot be turned into a network input (message readable by a PACS admin)."""


@dataclass(frozen=True)
class FrameGeometry:
    orientation: tuple[float, float, float, float, float, float] | None  # ImageOrientationPatient
    pixel_spacing_mm: tuple[float, float]  # (between rows, between columns)
    spacing_known: bool


@dataclass(frozen=True)
class Frame8Bit:
    image: np.ndarray  # (Rows, Columns) uint8
    window_center: float
    window_width: float
    window_source: str  # "file" or "percentile"
    geometry: FrameGeometry
    window_note: str | None = None  # why the file's window was not used, when it was not


def _frame_groups(ds: Dataset, frame_index: int | None) -> list[Dataset]:
    """Per-frame functional group item of this frame (first), then the shared one."""
    groups: list[Dataset] = []
    if frame_index is not None and "PerFrameFunctionalGroupsSequence" in ds:
        seq = ds.PerFrameFunctionalGroupsSequence
        if frame_index < len(seq):
            groups.append(seq[frame_index])
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    return groups


def _lookup(ds: Dataset, frame_index: int | None, sequence: str, keyword: str) -> Any:
    for group in _frame_groups(ds, frame_index):
        if sequence in group and len(group[sequence].value):
            item = group[sequence][0]
            if keyword in item and item[keyword].value not in (None, ""):
                return item[keyword].value
    value = ds.get(keyword)
    return None if value in (None, "") else value


def _first(value: Any) -> float:
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str):
        value = value[0]
    return float(value)


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def read_geometry(ds: Dataset, frame_index: int | None) -> FrameGeometry:
    iop = _lookup(ds, frame_index, "PlaneOrientationSequence", "ImageOrientationPatient")
    orientation = None
    if iop is not None and len(iop) == 6:
        orientation = tuple(float(v) for v in iop)
    spacing = _lookup(ds, frame_index, "PixelMeasuresSequence", "PixelSpacing")
    if spacing is None:
        spacing = ds.get("ImagerPixelSpacing")
    known = spacing is not None and len(spacing) == 2 and all(float(s) > 0 for s in spacing)
    pixel_spacing = (float(spacing[0]), float(spacing[1])) if known else (1.0, 1.0)
    return FrameGeometry(orientation, pixel_spacing, known)  # type: ignore[arg-type]


def resolve_frame_index(ds: Dataset, frame_index: int | None) -> int | None:
    """None for single-frame images; for multi-frame ones the requested frame (default: the middle one)."""
    n = frame_count(ds)
    if frame_index is None:
        return n // 2 if n > 1 else None
    if not 0 <= frame_index < n:
        raise PreprocessingError(f"frame {frame_index} requested, but the image has {n} frame(s)")
    return frame_index if n > 1 else None


def _raw_frame(ds: Dataset, frame_index: int | None) -> np.ndarray:
    n = frame_count(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PreprocessingError("the DICOM object has no pixel data")
    try:
        arr = pixel_array(ds, index=frame_index if n > 1 else None)
    except Exception as exc:  # noqa: BLE001 - decoder errors come in many types
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise PreprocessingError(f"cannot decode pixel data (transfer syntax {ts}): {exc}") from exc
    if arr.ndim == 3 and arr.shape[-1] == 3:  # colour: luminance, as OpenCV BGR->GRAY on R=G=B exports
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    if arr.ndim != 2:
        raise PreprocessingError(f"expected one 2-D frame, got pixel array of shape {arr.shape}")
    return arr


def _modality_lut(ds: Dataset, frame_index: int | None, arr: np.ndarray) -> np.ndarray:
    slope = _lookup(ds, frame_index, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _lookup(ds, frame_index, "PixelValueTransformationSequence", "RescaleIntercept")
    if slope is not None or intercept is not None:
        s = float(slope) if slope is not None else 1.0
        i = float(intercept) if intercept is not None else 0.0
        return arr.astype(np.float64) * s + i
    if "ModalityLUTSequence" in ds:
        return apply_modality_lut(arr, ds).astype(np.float64)
    return arr.astype(np.float64)


def _window(ds: Dataset, frame_index: int | None) -> tuple[float, float, str] | None:
    c = _lookup(ds, frame_index, "FrameVOILUTSequence", "WindowCenter")
    w = _lookup(ds, frame_index, "FrameVOILUTSequence", "WindowWidth")
    if c is None or w is None:
        return None
    try:
        center, width = _first(c), _first(w)
    except (TypeError, ValueError, IndexError):
        return None
    if not np.isfinite(center) or not np.isfinite(width) or width < 1:
        return None
    fn = _lookup(ds, frame_index, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR"
    return center, width, str(fn).upper()


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 VOI window to the float range [0, 255] (not yet rounded)."""
    if function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0) * 255.0
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0) * 255.0


# A file window is used only if the image keeps enough contrast through it (measured on a real lumbar T2,
# tests/inference/test_preprocess.py: windows about 3x wider than the image's 1-99.5 % range, or shifted so
# that most of the image turns black, made the network lose the lower discs).
MIN_WINDOW_SPREAD = 100.0  # grey levels between the 1st and 99.5th percentile of the windowed image
MAX_BLACK_FRACTION = 0.75
MAX_WHITE_FRACTION = 0.25


def _content_range(finite: np.ndarray) -> tuple[float, float] | None:
    """The 1st and 99.5th percentile of the finite pixel values (None for an image without any)."""
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, PERCENTILE_WINDOW)
    return float(lo), float(hi)


def window_problem(values: np.ndarray, center: float, width: float, function: str = "LINEAR", *,
                   content_range: tuple[float, float] | None = None) -> str | None:
    """Why the window (``center``, ``width``) would leave the image unusable for the network, or None.
    ``content_range``: the values' :func:`_content_range` when the caller has it already."""
    finite = values[np.isfinite(values)]
    content = content_range if content_range is not None else _content_range(finite)
    if content is None or content[1] - content[0] <= 0:
        return None  # a flat image: no window can show more
    out = apply_window(finite, center, width, function)
    q_lo, q_hi = np.percentile(out, PERCENTILE_WINDOW)
    black, white = float((out <= 0.5).mean()), float((out >= 254.5).mean())
    what = f"the file's window (centre {center:g}, width {width:g})"
    if q_hi - q_lo < MIN_WINDOW_SPREAD:
        return f"{what} spreads the image over only {q_hi - q_lo:.0f} of 255 grey levels"
    if black > MAX_BLACK_FRACTION:
        return f"{what} turns {black:.0%} of the image black"
    if white > MAX_WHITE_FRACTION:
        return f"{what} turns {white:.0%} of the image white"
    return None


def windowed_frame(ds: Dataset, frame_index: int | None = None) -> tuple[np.ndarray, Frame8Bit]:
    """Return (float image in [0, 255] on the source grid, its 8-bit version with window metadata).

    The file's window is replaced by the percentile window when :func:`window_problem` finds it unusable;
    ``Frame8Bit.window_note`` then says why.
    """
    frame_index = resolve_frame_index(ds, frame_index)
    values = _modality_lut(ds, frame_index, _raw_frame(ds, frame_index))
    win = _window(ds, frame_index)
    content = _content_range(values[np.isfinite(values)])  # once: judges the file window and replaces it
    note = None
    if win is not None:
        problem = window_problem(values, *win, content_range=content)
        if problem is not None:
            note = f"{problem}; a 1-99.5 % percentile window was used instead"
            win = None
    if win is None:
        if content is None:
            raise PreprocessingError("the image has no finite pixel values")
        lo, hi = content
        if hi <= lo:
            hi = lo + 1.0
        center, width, source, fn = (lo + hi) / 2.0, hi - lo, "percentile", "LINEAR_EXACT"
    else:
        center, width, fn = win
        source = "file"
    scaled = apply_window(values, center, width, fn)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        scaled = 255.0 - scaled
    image = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    frame = Frame8Bit(image, float(center), float(width), source, read_geometry(ds, frame_index), note)
    return scaled.astype(np.float32), frame
