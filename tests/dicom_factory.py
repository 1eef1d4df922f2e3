"""The one factory for test DICOM data: MR images (classic and Enhanced), series and studies in folders.

Built on the phantom study writer's building blocks (``inference.synthetic.study``): Part 10 file meta,
the 16-bit MONOCHROME2 pixel module and the turbo-spin-echo acquisition attributes. Pixels here are
whatever the caller passes; the realistic lumbar phantom is ``inference.synthetic.study.write_study``.

- ``mr_image`` / ``enhanced_mr_image``: one instance in memory, any geometry, timing and attributes.
- ``patient_study_header``: the patient/study attributes a scanner sends (as keyword -> value).
- ``StudyWriter``: one study (UIDs, header) written series by series into a folder.
- ``write_mr_study``: the node tests' small three-series lumbar study (``mr_study`` fixture).
- ``canonical_pattern`` / ``reorient`` / ``source_iop`` / ``make_mr``: a known pixel pattern in any
  flip/transpose layout, for the preprocessing and segmenter tests.

Import it as ``from dicom_factory import ...`` (tests/conftest.py puts tests/ on sys.path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import EnhancedMRImageStorage, MRImageStorage, generate_uid

from inference.synthetic.study import part10_dataset, set_grey_pixels, set_tse_acquisition

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows head->feet, columns anterior->posterior
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


# -- single instances ----------------------------------------------------------------------------------
def mr_image(
    pixels: np.ndarray,
    *,
    orientation: Sequence[float] | None = None,
    position: Sequence[float] | None = None,
    pixel_spacing: Sequence[float] | None = None,
    window: tuple[float, float] | None = None,
    te: float | None = None,
    tr: float | None = None,
    bits_stored: int = 16,
    **attributes: Any,
) -> Dataset:
    """A single-frame MR Image (Explicit VR Little Endian) with a fresh SOP Instance UID.

    Geometry and window are set only when given (tests of missing attributes leave them out). Giving
    ``te`` or ``tr`` (ms) adds the spin-echo acquisition attributes. ``attributes`` (DICOM keywords) are
    set last and win over everything else.
    """
    ds = part10_dataset(MRImageStorage, str(generate_uid()))
    ds.Modality = "MR"
    set_grey_pixels(ds, pixels, bits_stored=bits_stored)
    if orientation is not None:
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [round(float(v), 6) for v in position]  # DS: at most 16 characters
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if te is not None or tr is not None:
        set_tse_acquisition(ds, te=te, tr=tr)
    _set_attributes(ds, attributes)
    return ds


def enhanced_mr_image(
    frames: np.ndarray,
    *,
    orientation: Sequence[float],
    positions: Sequence[Sequence[float]],
    pixel_spacing: Sequence[float],
    slice_thickness: float,
    spacing_between_slices: float | None = None,
    te: float | None = None,
    tr: float | None = None,
    inversion_recovery: str | None = None,
    bits_stored: int = 16,
    **attributes: Any,
) -> Dataset:
    """An Enhanced MR Image: ``frames`` (n x rows x cols) at ``positions`` (one per frame), one stack.

    Shared groups: pixel measures, plane orientation, MR timing (``tr``), MR modifier
    (``inversion_recovery``); per frame: plane position, frame content, MR echo (``te``). The dimension
    index is the image position.
    """
    if len(positions) != len(frames):
        raise ValueError(f"{len(frames)} frames need as many positions, not {len(positions)}")
    ds = part10_dataset(EnhancedMRImageStorage, str(generate_uid()))
    ds.Modality = "MR"
    set_grey_pixels(ds, frames, bits_stored=bits_stored)
    spacing_between = {} if spacing_between_slices is None else {"SpacingBetweenSlices": spacing_between_slices}
    shared = Dataset()
    shared.PixelMeasuresSequence = _one_item(
        PixelSpacing=[float(v) for v in pixel_spacing], SliceThickness=slice_thickness, **spacing_between
    )
    shared.PlaneOrientationSequence = _one_item(ImageOrientationPatient=[float(v) for v in orientation])
    if tr is not None:
        shared.MRTimingAndRelatedParametersSequence = _one_item(RepetitionTime=tr)
    if inversion_recovery is not None:
        shared.MRModifierSequence = _one_item(InversionRecovery=inversion_recovery)
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    dimension_uid = generate_uid()
    ds.DimensionOrganizationSequence = _one_item(DimensionOrganizationUID=dimension_uid)
    ds.DimensionIndexSequence = _one_item(
        DimensionOrganizationUID=dimension_uid,
        DimensionIndexPointer=0x00200032,  # Image Position (Patient)
        FunctionalGroupPointer=0x00209113,  # Plane Position Sequence
    )
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(
        [_frame_groups(number, position, te) for number, position in enumerate(positions, start=1)]
    )
    _set_attributes(ds, attributes)
    return ds


def _frame_groups(number: int, position: Sequence[float], te: float | None) -> Dataset:
    groups = Dataset()
    groups.PlanePositionSequence = _one_item(ImagePositionPatient=[round(float(v), 6) for v in position])
    groups.FrameContentSequence = _one_item(DimensionIndexValues=[number], StackID="1", InStackPositionNumber=number)
    if te is not None:
        groups.MREchoSequence = _one_item(EffectiveEchoTime=te)
    return groups


def _one_item(**attributes: Any) -> DicomSequence:
    item = Dataset()
    _set_attributes(item, attributes)
    return DicomSequence([item])


def _set_attributes(ds: Dataset, attributes: Mapping[str, Any]) -> None:
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)


def patient_study_header(
    *,
    patient_name: str = "PHANTOM^LUMBAR",
    patient_id: str = "PHANTOM001",
    birth_date: str = "",
    sex: str = "F",
    age: str | None = None,
    study_date: str = "20240102",
    study_time: str = "101500",
    accession: str = "ACC0001",
    manufacturer: str = "SIEMENS",
    study_description: str | None = "MR LUMBAR SPINE",
    **extra: Any,
) -> dict[str, Any]:
    """Patient and general study attributes of a lumbar MR (keyword -> value); ``extra`` adds more.

    ``age`` and ``study_description`` are left out when None."""
    header: dict[str, Any] = {
        "PatientName": patient_name,
        "PatientID": patient_id,
        "PatientBirthDate": birth_date,
        "PatientSex": sex,
        "StudyDate": study_date,
        "StudyTime": study_time,
        "StudyID": "1",
        "AccessionNumber": accession,
        "ReferringPhysicianName": "",
        "Manufacturer": manufacturer,
        "BodyPartExamined": "LSPINE",
    }
    if age is not None:
        header["PatientAge"] = age
    if study_description is not None:
        header["StudyDescription"] = study_description
    return header | extra


# -- series and studies written to a folder ----------------------------------------------------------
@dataclass(frozen=True)
class GeneratedSeries:
    series_uid: str
    description: str
    files: tuple[Path, ...]
    sop_uids: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedStudy:
    directory: Path
    study_uid: str
    series: tuple[GeneratedSeries, ...]

    @property
    def files(self) -> list[Path]:
        return [f for s in self.series for f in s.files]

    @property
    def sop_uids(self) -> list[str]:
        return [u for s in self.series for u in s.sop_uids]


PixelSource = Callable[[int], np.ndarray]
"""Slice index -> that slice's pixels (rows x columns)."""


class StudyWriter:
    """One study (Study and Frame of Reference UIDs, ``header`` on every instance) written into ``root``.

    Each ``series()`` call writes one series into its own sub-folder and is recorded in ``written``.
    """

    def __init__(self, root: Path, *, study_uid: str | None = None, header: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.study_uid = study_uid or str(generate_uid())
        self.frame_of_reference = str(generate_uid())
        self.header: dict[str, Any] = dict({"PatientID": "SEL-TEST"} if header is None else header)
        self.series_number = 0
        self.written: list[GeneratedSeries] = []

    def series(
        self,
        description: str,
        *,
        te: float | None = 100.0,
        tr: float | None = 3500.0,
        orientation: Sequence[float] = SAGITTAL,
        n_slices: int = 7,
        spacing_mm: float = 4.0,
        first_position: float = -12.0,
        enhanced: bool = False,
        series_number: int | None = None,
        rows: int = 16,
        columns: int | None = None,
        pixel_spacing_mm: float = 0.5,
        slice_thickness_mm: float | None = None,
        centre: Sequence[float] = (0.0, -80.0, 60.0),
        pixels: PixelSource | None = None,
        folder: str | None = None,
        bits_stored: int = 12,
        **attributes: Any,
    ) -> list[Path]:
        """Write ``n_slices`` parallel slices (one Enhanced MR file if ``enhanced``); return the paths.

        Slice i lies at ``centre + normal * (first_position + i * spacing_mm)``. Pixels default to the
        slice index everywhere. ``attributes`` (DICOM keywords) are set last on every instance.
        """
        self.series_number += 1
        out = self.root / (folder or f"series{self.series_number:03d}")
        out.mkdir(parents=True, exist_ok=True)
        cols = columns or rows
        make_pixels = pixels or (lambda index: np.full((rows, cols), index, np.uint16))
        normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
        distances = [first_position + i * spacing_mm for i in range(n_slices)]
        positions = [np.asarray(centre, dtype=float) + normal * d for d in distances]
        series_uid = str(generate_uid())
        image: dict[str, Any] = {
            "orientation": orientation, "pixel_spacing": (pixel_spacing_mm, pixel_spacing_mm), "te": te, "tr": tr,
            "bits_stored": bits_stored,
        }
        header = {
            **self.header, "StudyInstanceUID": self.study_uid, "SeriesInstanceUID": series_uid,
            "FrameOfReferenceUID": self.frame_of_reference,
            "SeriesNumber": series_number if series_number is not None else self.series_number,
            "SeriesDescription": description, "ProtocolName": description,
            "ImageType": ["ORIGINAL", "PRIMARY", "M", "NONE"],
        }
        thickness = spacing_mm if slice_thickness_mm is None else slice_thickness_mm
        if enhanced:
            frames = np.stack([make_pixels(i) for i in range(n_slices)])
            datasets = {out / "enhanced.dcm": enhanced_mr_image(
                frames, positions=positions, slice_thickness=thickness,
                inversion_recovery=attributes.pop("InversionRecovery", "NO"), **image,
                **{**header, "InstanceNumber": 1, "AcquisitionContrast": "UNKNOWN", **attributes},
            )}
        else:
            datasets = {
                out / f"{i + 1:03d}.dcm": mr_image(make_pixels(i), position=position, **image, **{
                    **header, "InstanceNumber": i + 1, "SliceThickness": thickness,
                    "SpacingBetweenSlices": abs(spacing_mm), "SliceLocation": round(distance, 6), **attributes,
                })
                for i, (position, distance) in enumerate(zip(positions, distances))
            }
        for path, ds in datasets.items():
            ds.save_as(path, enforce_file_format=True)
        self.written.append(GeneratedSeries(
            series_uid, description, tuple(datasets), tuple(str(ds.SOPInstanceUID) for ds in datasets.values())
        ))
        return list(datasets)

    def study(self) -> GeneratedStudy:
        """What has been written so far."""
        return GeneratedStudy(self.root, self.study_uid, tuple(self.written))


# -- the node tests' study ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesSpec:
    description: str
    number: int
    slices: int
    orientation: tuple[float, ...]
    echo_time_ms: float
    repetition_time_ms: float
    pixel_spacing_mm: float
    slice_thickness_mm: float
    rows: int
    columns: int


DEFAULT_SERIES = (
    SeriesSpec("SAG T2 TSE", 3, 7, SAGITTAL, 102.0, 3200.0, 0.6875, 4.0, 64, 64),
    SeriesSpec("SAG T1 TSE", 2, 5, SAGITTAL, 9.8, 520.0, 0.6875, 4.0, 64, 64),
    SeriesSpec("AX T2 TSE", 4, 4, AXIAL, 98.0, 4100.0, 0.625, 4.0, 48, 48),
)


def write_mr_study(
    out_dir: Path,
    series: tuple[SeriesSpec, ...] = DEFAULT_SERIES,
    study_uid: str | None = None,
    patient_age: str = "047Y",
    patient_sex: str = "F",
    seed: int = 0,
) -> GeneratedStudy:
    """A small, header-realistic lumbar MR study for network tests: one Part 10 file per slice in
    ``out_dir/<series number>/``. Pixels are a bright column on a dark background (brighter on T2)."""
    rng = np.random.default_rng(seed)
    writer = StudyWriter(
        Path(out_dir), study_uid=study_uid,
        header=patient_study_header(age=patient_age, sex=patient_sex, SeriesDate="20240102", PatientPosition="HFS",
                                    PositionReferenceIndicator="", ManufacturerModelName="Skyra",
                                    MagneticFieldStrength=3.0),
    )
    for spec in series:
        gap = spec.slice_thickness_mm * 1.1
        half_width = spec.columns * spec.pixel_spacing_mm / 2.0
        sagittal = spec.orientation == SAGITTAL
        writer.series(
            spec.description, te=spec.echo_time_ms, tr=spec.repetition_time_ms, orientation=spec.orientation,
            n_slices=spec.slices, spacing_mm=gap, first_position=-(spec.slices - 1) / 2.0 * gap,
            series_number=spec.number, rows=spec.rows, columns=spec.columns, pixel_spacing_mm=spec.pixel_spacing_mm,
            slice_thickness_mm=spec.slice_thickness_mm, folder=f"{spec.number:03d}",
            centre=(0.0, -half_width, half_width) if sagittal else (-half_width, -half_width, -60.0),
            pixels=_bright_column(spec, rng), EchoTrainLength=17 if spec.echo_time_ms > 50 else 3,
            WindowCenter=500, WindowWidth=1000,
        )
    return writer.study()


def _bright_column(spec: SeriesSpec, rng: np.random.Generator) -> PixelSource:
    def pixels(index: int) -> np.ndarray:
        image = rng.integers(20, 60, size=(spec.rows, spec.columns), dtype=np.uint16)
        centre = spec.columns // 2 + (index - spec.slices // 2)
        image[:, max(0, centre - 4) : centre + 4] += np.uint16(900 if spec.echo_time_ms > 50 else 500)
        return image

    return pixels


# -- a known pattern in any in-plane layout (preprocessing, segmenter) -----------------------------------
CANONICAL_U = np.array([0.0, 1.0, 0.0])  # canonical layout: direction of increasing column index (anterior->posterior)
CANONICAL_V = np.array([0.0, 0.0, -1.0])  # direction of increasing row index (head->feet)


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
    """ImageOrientationPatient of the layout ``reorient`` makes with the same flags."""
    row_vec = CANONICAL_V * (-1 if flip_rows else 1)  # canonical row axis in patient space
    col_vec = CANONICAL_U * (-1 if flip_cols else 1)
    u, v = (row_vec, col_vec) if transpose else (col_vec, row_vec)
    return [float(x) for x in (*u, *v)]


def make_mr(
    pixels: np.ndarray,
    iop: Sequence[float] | None,
    spacing: tuple[float, float] | None = (0.8, 0.8),
    window: tuple[float, float] | None = (500.0, 1000.0),
) -> Dataset:
    """A bare MR image: pixels, and orientation/spacing/window where given (None leaves it out)."""
    return mr_image(pixels, orientation=iop, pixel_spacing=spacing, window=window)
