"""Synthetic single-frame sagittal MR datasets with a known pixel pattern, in any flip/transpose layout."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

# canonical layout: rows head->feet (-Z), columns anterior->posterior (+Y)
CANONICAL_U = np.array([0.0, 1.0, 0.0])  # direction of increasing column index
CANONICAL_V = np.array([0.0, 0.0, -1.0])  # direction of increasing row index


def canonical_pattern(rows: int = 96, cols: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 image, label map) in canonical layout: an asymmetric 'L' plus a blob near head/anterior."""
    img = np.full((rows, cols), 100, dtype=np.uint16)
    lab = np.zeros((rows, cols), dtype=np.uint8)
    img[10:30, 8:20] = 900  # head-anterior block: label 2
    lab[10:30, 8:20] = 2
    img[50:86, 40:48] = 600  # posterior-inferior bar: label 3
    lab[50:86, 40:48] = 3
    img[78:86, 20:40] = 600  # foot of the L: label 3
    lab[78:86, 20:40] = 3
    return img, lab


def reorient(canonical: np.ndarray, transpose: bool, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    """Source layout whose canonicalisation (transpose, then flips) gives back ``canonical``."""
    out = canonical
    if flip_cols:
        out = out[:, ::-1]
    if flip_rows:
        out = out[::-1]
    if transpose:
        out = out.T
    return np.ascontiguousarray(out)


def source_iop(transpose: bool, flip_rows: bool, flip_cols: bool) -> list[float]:
    row_vec = CANONICAL_V * (-1 if flip_rows else 1)  # canonical row axis in patient space
    col_vec = CANONICAL_U * (-1 if flip_cols else 1)
    u, v = (row_vec, col_vec) if transpose else (col_vec, row_vec)
    return [float(x) for x in (*u, *v)]


def make_mr(pixels: np.ndarray, iop: list[float] | None, spacing: tuple[float, float] | None = (0.8, 0.8),
            window: tuple[float, float] | None = (500.0, 1000.0)) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if iop is not None:
        ds.ImageOrientationPatient = iop
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds
