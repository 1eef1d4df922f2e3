"""Synthetic inputs for the sr_templates tests: MR slices, hand-drawn label maps, quantitation results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_factory import AXIAL, SAGITTAL, enhanced_mr_image, mr_image, patient_study_header
from quantitation.results import (
    DISC_LEVELS,
    VERTEBRA_LEVELS,
    DiscResult,
    Method,
    ReferenceDeviation,
    SliceQuantitation,
    Status,
    VertebraResult,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CHINESE_NAME = "张^伟=Zhang^Wei"

ORIENTATIONS: dict[str, tuple[float, ...]] = {
    "sagittal": SAGITTAL,
    "sagittal_rows_flipped": (0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    "axial": AXIAL,
    "oblique": (0.0, 0.8660254, -0.5, 0.0, 0.5, 0.8660254),
}
PHANTOM_POSITION = (-12.5, -40.0, 60.0)  # ImagePositionPatient of the analysed slice

# Hand-drawn phantom geometry on a 96 x 80 grid (rows x columns), anterior = low column.
ROWS, COLS = 96, 80
# (label value, row0, row1, col0, col1), half-open boxes
BOXES: tuple[tuple[int, int, int, int, int], ...] = (
    (2, 4, 14, 20, 44),    # L1
    (3, 14, 18, 21, 43),   # L1/L2
    (4, 18, 28, 20, 44),   # L2
    (5, 28, 32, 21, 43),   # L2/L3
    (6, 32, 42, 20, 44),   # L3
    (7, 42, 46, 21, 43),   # L3/L4
    (8, 46, 56, 20, 44),   # L4
    (9, 56, 61, 21, 43),   # L4/L5
    (10, 61, 71, 20, 44),  # L5
    (11, 71, 75, 21, 43),  # L5/S1  (failed in the quantitation fixture)
    (12, 75, 90, 18, 46),  # sacrum
    (13, 78, 90, 8, 18),   # presacral fat
    (1, 2, 92, 48, 54),    # CSF column, posterior
)


def draw_label_map(rows: int = ROWS, cols: int = COLS, omit: tuple[int, ...] = ()) -> np.ndarray:
    """Rectangles for bodies, discs, sacrum, fat and CSF; ``omit`` drops classes (absent structures)."""
    label_map = np.zeros((rows, cols), dtype=np.uint8)
    for value, r0, r1, c0, c1 in BOXES:
        if value not in omit:
            label_map[r0:r1, c0:c1] = value
    return label_map


def _box(value: int) -> tuple[int, int, int, int]:
    for v, r0, r1, c0, c1 in BOXES:
        if v == value:
            return r0, r1, c0, c1
    raise KeyError(value)


def make_quantitation() -> SliceQuantitation:
    """Per-disc numbers on the phantom; L5/S1 failed with a reason, L4/L5 partial (no ΔSI)."""
    disc_values = {  # dh_mm, dhi, hdr, delta_si, grade group
        "L1/L2": (8.1, 0.41, 0.33, 101.5, 1),
        "L2/L3": (8.9, 0.44, 0.35, 88.25, 2),
        "L3/L4": (9.6, 0.46, 0.37, 70.125, 3),
        "L4/L5": (10.4, 0.49, 0.40, None, None),
        "L5/S1": (None, None, None, None, None),
    }
    discs = []
    for i, level in enumerate(DISC_LEVELS):
        r0, r1, c0, c1 = _box(3 + 2 * i)
        dh, dhi, hdr, dsi, grade = disc_values[level]
        if level == "L5/S1":
            discs.append(DiscResult(level=level, method=Method.DEFAULT, status=Status.FAILED,
                                    reasons=("disc not found between L5 and S1",)))
            continue
        mid_r = (r0 + r1 - 1) / 2.0
        deviations = (
            ReferenceDeviation("dhi", "z", 0.5 + i, 0.42, 0.05, f"Zheng 2022, male, {level}"),
            ReferenceDeviation("dh", "relative", -0.1 * i, 9.0, None, f"Zheng 2022, male, {level}"),
        )
        if dsi is not None:
            deviations += (ReferenceDeviation("delta_si", "z", -2.5 + i, 90.0, 10.0, f"Zheng 2022 healthy SI, {level}"),)
        discs.append(DiscResult(
            level=level, method=Method.DEFAULT,
            status=Status.OK if dsi is not None else Status.PARTIAL,
            reasons=() if dsi is not None else ("CSF reference region too small",),
            anterior_mid=(mid_r, float(c0)), posterior_mid=(mid_r, float(c1 - 1)),
            height_line=((float(r0), (c0 + c1) / 2.0), (float(r1 - 1), (c0 + c1) / 2.0)),
            outline=((float(r0), float(c0)), (float(r0), float(c1 - 1)), (float(r1 - 1), float(c1 - 1)),
                     (float(r1 - 1), float(c0))),
            dh_mm=dh, dh_px=(dh or 0) / 0.9, dhi=dhi, hdr=hdr, wd_small_mm=20.0, wd_big_mm=22.0,
            delta_si=dsi, delta_si_fat=None if dsi is None else dsi / 2,
            delta_si_outline_range=None if dsi is None else (dsi - 1.5 - i, dsi + 2.25), grade_group=grade,
            grade_z=None if grade is None else 0.25 * i, deviations=deviations,
        ))
    vertebrae = []
    for i, level in enumerate(VERTEBRA_LEVELS):
        r0, r1, c0, c1 = _box(2 + 2 * i if level != "S1" else 12)
        if level == "S1":
            vertebrae.append(VertebraResult(level=level, status=Status.FAILED, reasons=("sacral endplate only",)))
            continue
        vertebrae.append(VertebraResult(
            level=level, status=Status.OK,
            corners=((float(r0), float(c0)), (float(r0), float(c1 - 1)), (float(r1 - 1), float(c0)),
                     (float(r1 - 1), float(c1 - 1))),
            height_mm=(r1 - r0) * 0.9 + 0.05 * i, height_px=float(r1 - r0)))
    return SliceQuantitation(method=Method.DEFAULT, discs=tuple(discs), vertebrae=tuple(vertebrae),
                             csf_reference=163.0, fat_reference=140.0, pixel_spacing_mm=(0.9, 0.9), sex="M",
                             age_years=51.0)


def _phantom_pixels(label_map: np.ndarray) -> np.ndarray:
    grey = {0: 20, 1: 900, 13: 700}
    img = np.vectorize(lambda v: grey.get(int(v), 300 + 20 * int(v)))(label_map)
    return img.astype(np.uint16)


def _patient_study(patient_name: str, study_uid: str) -> dict[str, Any]:
    """A Chinese-language site: UTF-8 character set, Chinese institution; fresh series and frame UIDs."""
    return patient_study_header(
        patient_name=patient_name, patient_id="BQ-TEST-001", birth_date="19700101", sex="M", study_date="20260101",
        study_time="101010", accession="ACC1", manufacturer="Phantom",
        SpecificCharacterSet="ISO_IR 192", InstitutionName="第一医院 Radiology", StudyInstanceUID=study_uid, SeriesInstanceUID=generate_uid(),
        FrameOfReferenceUID=generate_uid(), PositionReferenceIndicator="",
    )


def make_mr_slice(orientation: str = "sagittal", *, label_map: np.ndarray | None = None,
                  patient_name: str = CHINESE_NAME, study_uid: str | None = None) -> Dataset:
    """Single-frame MR slice (T2 sagittal-like phantom) with the given orientation."""
    label_map = draw_label_map() if label_map is None else label_map
    return mr_image(
        _phantom_pixels(label_map), orientation=ORIENTATIONS[orientation], position=PHANTOM_POSITION,
        pixel_spacing=(0.9, 0.9), te=100.0, tr=3000.0, bits_stored=12,
        **_patient_study(patient_name, study_uid or generate_uid()), SeriesNumber=3, SeriesDescription="T2 SAG",
        InstanceNumber=7, ImageType=["ORIGINAL", "PRIMARY", "M", "NONE"], EchoTrainLength=16, SliceThickness=4.0,
    )


def make_enhanced_mr(orientation: str = "sagittal", *, n_frames: int = 3, analysed_frame: int = 1,
                     label_map: np.ndarray | None = None, patient_name: str = CHINESE_NAME) -> Dataset:
    """Enhanced MR multi-frame (parallel slices 4 mm apart) with the phantom in ``analysed_frame``."""
    label_map = draw_label_map() if label_map is None else label_map
    iop = np.array(ORIENTATIONS[orientation])
    normal = np.cross(iop[:3], iop[3:])
    frames = np.full((n_frames, *label_map.shape), 50, dtype=np.uint16)
    frames[analysed_frame] = _phantom_pixels(label_map)
    return enhanced_mr_image(
        frames, orientation=iop, positions=[np.array(PHANTOM_POSITION) + (i - analysed_frame) * 4.0 * normal
                                            for i in range(n_frames)],
        pixel_spacing=(0.9, 0.9), slice_thickness=4.0, spacing_between_slices=4.0, bits_stored=12,
        **_patient_study(patient_name, generate_uid()), SeriesNumber=4, SeriesDescription="T2 SAG enhanced",
        InstanceNumber=1, ImageType=["ORIGINAL", "PRIMARY", "T2", "NONE"], ContentDate="20260101",
        ContentTime="101010", AcquisitionDateTime="20260101101010",
    )
