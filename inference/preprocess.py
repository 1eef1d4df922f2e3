"""DICOM slice -> BianqueNet input, with the exact inverse transform back to the source pixel grid.

Steps (spec 2.8, adapted from BMP exports to DICOM):

1. 8-bit frame: modality LUT, the file's VOI window or a 1-99.5 % percentile window
   (:mod:`inference.dicom_pixels`).
2. Reorientation with ImageOrientationPatient (flips/transpose only) so that rows run head -> feet
   (patient -Z) and columns anterior -> posterior (patient +Y); the network was trained on such images
   ("head up, anterior left"). Sagittal-ish planes only; images without orientation are used as stored.
3. Resize keeping the physical aspect ratio (pixel spacing respected, isotropic output spacing) so the
   whole field of view fits the model's square input, then zero-pad centrally to S x S (S a multiple of 64).
4. CLAHE (OpenCV, clip limit 2.0, 8x8 tiles) on each of the 3 identical channels (computed once and
   replicated: bit-identical to per-channel CLAHE), then x/255, (x - 0.2703814) / 0.24898738.

Coordinates are continuous (row, col) with pixel centres at integers. Canonical -> model grid is
``m = (c + 0.5) * scale - 0.5 + offset`` per axis, the same convention as OpenCV's resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom.dataset import Dataset

from inference.dicom_pixels import PreprocessingError, resolve_frame_index, windowed_frame
from inference.normalisation import NORM_MEAN, NORM_STD, normalise  # noqa: F401 - re-exported
from inference.variants import INPUT_SIZE_MULTIPLE

MIN_SAGITTAL_NORMAL_X = 0.5  # |normal . x| below this: not a sagittal slice

__all__ = ["PreparedSlice", "PreprocessingError", "SliceTransform", "orientation_ops", "prepare_slice"]


@dataclass(frozen=True, eq=False)
class SliceTransform:
    """Axis-aligned map between the source DICOM pixel grid and the S x S model grid."""

    source_shape: tuple[int, int]  # (Rows, Columns)
    transpose: bool  # applied first: source rows <-> columns
    flip_rows: bool  # then reverse row order
    flip_cols: bool  # then reverse column order
    canonical_shape: tuple[int, int]  # after transpose/flips
    resized_shape: tuple[int, int]  # (nh, nw) on the model grid
    offset: tuple[int, int]  # padding before the image (rows, cols)
    model_size: int

    @property
    def scale(self) -> tuple[float, float]:
        return (self.resized_shape[0] / self.canonical_shape[0], self.resized_shape[1] / self.canonical_shape[1])

    # ---------------------------------------------------------------------------------------- points
    def source_to_model(self, points_rc: np.ndarray) -> np.ndarray:
        p = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2).copy()
        if self.transpose:
            p = p[:, ::-1].copy()
        h, w = self.canonical_shape
        if self.flip_rows:
            p[:, 0] = h - 1 - p[:, 0]
        if self.flip_cols:
            p[:, 1] = w - 1 - p[:, 1]
        sr, sc = self.scale
        p[:, 0] = (p[:, 0] + 0.5) * sr - 0.5 + self.offset[0]
        p[:, 1] = (p[:, 1] + 0.5) * sc - 0.5 + self.offset[1]
        return p

    def model_to_source(self, points_rc: np.ndarray) -> np.ndarray:
        p = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2).copy()
        sr, sc = self.scale
        p[:, 0] = (p[:, 0] - self.offset[0] + 0.5) / sr - 0.5
        p[:, 1] = (p[:, 1] - self.offset[1] + 0.5) / sc - 0.5
        h, w = self.canonical_shape
        if self.flip_cols:
            p[:, 1] = w - 1 - p[:, 1]
        if self.flip_rows:
            p[:, 0] = h - 1 - p[:, 0]
        if self.transpose:
            p = p[:, ::-1].copy()
        return p

    # ---------------------------------------------------------------------------------------- arrays
    def source_to_canonical_array(self, image: np.ndarray) -> np.ndarray:
        """Reorient a (Rows, Columns, ...) array to the canonical orientation."""
        out = np.swapaxes(image, 0, 1) if self.transpose else image
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def canonical_to_source_array(self, image: np.ndarray) -> np.ndarray:
        out = image
        if self.flip_cols:
            out = out[:, ::-1]
        if self.flip_rows:
            out = out[::-1]
        if self.transpose:
            out = np.swapaxes(out, 0, 1)
        return np.ascontiguousarray(out)

    def _nearest_model_indices(self) -> tuple[np.ndarray, np.ndarray]:
        sr, sc = self.scale
        (h, w), (nh, nw), (oy, ox) = self.canonical_shape, self.resized_shape, self.offset
        rows = np.floor((np.arange(h) + 0.5) * sr - 0.5 + 0.5).astype(np.int64)
        cols = np.floor((np.arange(w) + 0.5) * sc - 0.5 + 0.5).astype(np.int64)
        return np.clip(rows, 0, nh - 1) + oy, np.clip(cols, 0, nw - 1) + ox

    def labels_to_source(self, label_map_model: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resampling of an (S, S) label map onto the source (Rows, Columns) grid."""
        lm = np.asarray(label_map_model)
        if lm.shape[-2:] != (self.model_size, self.model_size):
            raise ValueError(f"label map must be {self.model_size}x{self.model_size}, got {lm.shape}")
        rows, cols = self._nearest_model_indices()
        return self.canonical_to_source_array(lm[np.ix_(rows, cols)])

    def probabilities_to_source(self, probs: np.ndarray) -> np.ndarray:
        """Bilinear resampling of (C, S, S) maps onto the source grid: (C, Rows, Columns) float32."""
        p = np.asarray(probs, dtype=np.float32)
        if p.ndim != 3 or p.shape[1:] != (self.model_size, self.model_size):
            raise ValueError(f"probabilities must be (C, {self.model_size}, {self.model_size}), got {p.shape}")
        (h, w), (nh, nw), (oy, ox) = self.canonical_shape, self.resized_shape, self.offset
        crop = p[:, oy:oy + nh, ox:ox + nw]
        chans = [cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_LINEAR) for c in crop]
        canon = np.stack(chans, axis=-1)  # (h, w, C)
        return np.ascontiguousarray(np.moveaxis(self.canonical_to_source_array(canon), -1, 0))

    def image_to_model(self, image: np.ndarray) -> np.ndarray:
        """Resample a float/uint8 source-grid image onto the model grid (zero padding)."""
        canon = self.source_to_canonical_array(np.asarray(image, dtype=np.float32))
        (h, w), (nh, nw), (oy, ox) = self.canonical_shape, self.resized_shape, self.offset
        interp = cv2.INTER_AREA if nh < h and nw < w else cv2.INTER_LINEAR
        resized = cv2.resize(canon, (nw, nh), interpolation=interp)
        out = np.zeros((self.model_size, self.model_size), dtype=np.float32)
        out[oy:oy + nh, ox:ox + nw] = resized
        return out


@dataclass(frozen=True, eq=False)
class PreparedSlice:
    model_input: np.ndarray  # (3, S, S) float32, CLAHE + normalised
    model_image_8bit: np.ndarray  # (S, S) uint8, un-CLAHE'd 8-bit image on the model grid (for dSI)
    model_pixel_spacing_mm: tuple[float, float]  # (row, col) spacing on the model grid
    valid_mask: np.ndarray  # (S, S) bool, True inside the non-padded image
    valid_bbox: tuple[int, int, int, int]  # (row0, col0, row1, col1), half-open, on the model grid
    transform: SliceTransform
    source_image_8bit: np.ndarray  # (Rows, Columns) uint8, windowed frame on the source grid
    source_pixel_spacing_mm: tuple[float, float]
    spacing_known: bool  # False when the file has no PixelSpacing (1 mm assumed)
    orientation_known: bool  # False when the file has no ImageOrientationPatient (used as stored)
    window_center: float
    window_width: float
    window_source: str  # "file" | "percentile"
    frame_index: int | None  # None for single-frame images
    sop_instance_uid: str
    window_note: str | None = None  # why the file's window was replaced, when it was

    def notes(self) -> tuple[str, ...]:
        """What the results should say about how this slice was read (assumptions, replaced window)."""
        out = []
        if not self.spacing_known:
            out.append("the slice has no pixel spacing: 1 mm per pixel was assumed, so lengths in mm are not reliable")
        if not self.orientation_known:
            out.append("the slice has no ImageOrientationPatient: the pixels were read as stored (head at the top)")
        if self.window_note:
            out.append(self.window_note)
        return tuple(out)

    @property
    def input_size(self) -> int:
        return self.transform.model_size


def orientation_ops(iop: tuple[float, ...] | None) -> tuple[bool, bool, bool]:
    """(transpose, flip_rows, flip_cols) making rows head->feet and columns anterior->posterior."""
    if iop is None:
        return False, False, False
    u = np.asarray(iop[:3], dtype=np.float64)  # direction of increasing column index
    v = np.asarray(iop[3:], dtype=np.float64)  # direction of increasing row index
    normal = np.cross(u, v)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise PreprocessingError(f"invalid ImageOrientationPatient {list(iop)}")
    if abs(normal[0]) / norm < MIN_SAGITTAL_NORMAL_X:
        raise PreprocessingError(
            f"the slice is not sagittal (ImageOrientationPatient {[round(x, 3) for x in iop]}); "
            "BianqueNet needs a sagittal lumbar slice"
        )
    transpose = bool(abs(u[2]) > abs(v[2]))
    row_vec, col_vec = (u, v) if transpose else (v, u)
    return transpose, bool(row_vec[2] > 0), bool(col_vec[1] < 0)


def prepare_slice(ds: Dataset, frame_index: int | None = None, input_size: int = 512) -> PreparedSlice:
    """Prepare one DICOM frame (single-frame MR, or frame ``frame_index`` of an Enhanced MR; default the
    middle frame) for a network whose input is ``input_size`` x ``input_size`` (a multiple of 64)."""
    if input_size <= 0 or input_size % INPUT_SIZE_MULTIPLE:
        raise ValueError(f"input_size must be a positive multiple of {INPUT_SIZE_MULTIPLE}, got {input_size}")
    frame_index = resolve_frame_index(ds, frame_index)
    scaled, frame = windowed_frame(ds, frame_index)
    geo = frame.geometry
    transpose, flip_rows, flip_cols = orientation_ops(geo.orientation)
    rows, cols = scaled.shape
    canon_shape = (cols, rows) if transpose else (rows, cols)
    sr, sc = geo.pixel_spacing_mm[::-1] if transpose else geo.pixel_spacing_mm
    extent_r, extent_c = canon_shape[0] * sr, canon_shape[1] * sc
    out_spacing = max(extent_r, extent_c) / input_size
    nh = int(min(input_size, max(1, round(extent_r / out_spacing))))
    nw = int(min(input_size, max(1, round(extent_c / out_spacing))))
    offset = ((input_size - nh) // 2, (input_size - nw) // 2)
    transform = SliceTransform(
        source_shape=(rows, cols), transpose=transpose, flip_rows=flip_rows, flip_cols=flip_cols,
        canonical_shape=canon_shape, resized_shape=(nh, nw), offset=offset, model_size=input_size,
    )
    model_float = transform.image_to_model(scaled)
    model8 = np.clip(np.rint(model_float), 0, 255).astype(np.uint8)
    valid = np.zeros((input_size, input_size), dtype=bool)
    valid[offset[0]:offset[0] + nh, offset[1]:offset[1] + nw] = True
    return PreparedSlice(
        model_input=normalise(model8),
        model_image_8bit=model8,
        model_pixel_spacing_mm=(extent_r / nh, extent_c / nw),
        valid_mask=valid,
        valid_bbox=(offset[0], offset[1], offset[0] + nh, offset[1] + nw),
        transform=transform,
        source_image_8bit=frame.image,
        source_pixel_spacing_mm=geo.pixel_spacing_mm,
        spacing_known=geo.spacing_known,
        orientation_known=geo.orientation is not None,
        window_center=frame.window_center,
        window_width=frame.window_width,
        window_source=frame.window_source,
        frame_index=frame_index,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        window_note=frame.window_note,
    )
