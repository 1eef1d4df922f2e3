"""A small, header-realistic lumbar MR study (sagittal T2, sagittal T1, axial T2) for network tests.

Pixels are simple synthetic shapes (a bright column on a dark background); the realistic phantom
lives in ``inference/synthetic``. Headers carry what a scanner would send and what series selection
looks at: orientation, position, spacing, TE/TR, series description, age and sex.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID, generate_uid

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


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


DEFAULT_SERIES = (
    SeriesSpec("SAG T2 TSE", 3, 7, SAGITTAL, 102.0, 3200.0, 0.6875, 4.0, 64, 64),
    SeriesSpec("SAG T1 TSE", 2, 5, SAGITTAL, 9.8, 520.0, 0.6875, 4.0, 64, 64),
    SeriesSpec("AX T2 TSE", 4, 4, AXIAL, 98.0, 4100.0, 0.625, 4.0, 48, 48),
)


def _pixels(spec: SeriesSpec, index: int, rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(20, 60, size=(spec.rows, spec.columns), dtype=np.uint16)
    centre = spec.columns // 2 + (index - spec.slices // 2)
    bright = 900 if spec.echo_time_ms > 50 else 500
    image[:, max(0, centre - 4) : centre + 4] += np.uint16(bright)
    return image


def write_mr_study(
    out_dir: Path,
    series: tuple[SeriesSpec, ...] = DEFAULT_SERIES,
    study_uid: str | None = None,
    patient_age: str = "047Y",
    patient_sex: str = "F",
    seed: int = 0,
) -> GeneratedStudy:
    """Write one Part 10 file per slice into ``out_dir/<series number>/``; return the UIDs and paths."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    study_uid = study_uid or generate_uid()
    frame_of_reference = generate_uid()
    generated: list[GeneratedSeries] = []
    for spec in series:
        series_uid = generate_uid()
        folder = out_dir / f"{spec.number:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        sops: list[str] = []
        for index in range(spec.slices):
            sop_uid = generate_uid()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            path = folder / f"{index + 1:04d}.dcm"
            ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_of_reference
            ds.Modality = "MR"
            ds.PatientName = "PHANTOM^LUMBAR"
            ds.PatientID = "PHANTOM001"
            ds.PatientBirthDate = ""
            ds.PatientAge = patient_age
            ds.PatientSex = patient_sex
            ds.StudyDate = "20240102"
            ds.StudyTime = "101500"
            ds.SeriesDate = "20240102"
            ds.AccessionNumber = "ACC0001"
            ds.StudyID = "1"
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = "MR LUMBAR SPINE"
            ds.SeriesDescription = spec.description
            ds.ProtocolName = spec.description
            ds.SeriesNumber = spec.number
            ds.InstanceNumber = index + 1
            ds.Manufacturer = "SIEMENS"
            ds.ManufacturerModelName = "Skyra"
            ds.MagneticFieldStrength = 3.0
            ds.BodyPartExamined = "LSPINE"
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = ["SK", "SP"]
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.EchoTime = spec.echo_time_ms
            ds.RepetitionTime = spec.repetition_time_ms
            ds.EchoTrainLength = 17 if spec.echo_time_ms > 50 else 3
            ds.SliceThickness = spec.slice_thickness_mm
            ds.SpacingBetweenSlices = spec.slice_thickness_mm * 1.1
            ds.ImageOrientationPatient = list(spec.orientation)
            offset = (index - (spec.slices - 1) / 2.0) * spec.slice_thickness_mm * 1.1
            half_w = spec.columns * spec.pixel_spacing_mm / 2.0
            if spec.orientation == SAGITTAL:
                ds.ImagePositionPatient = [offset, -half_w, half_w]
                ds.SliceLocation = offset
            else:
                ds.ImagePositionPatient = [-half_w, -half_w, -60.0 + offset]
                ds.SliceLocation = -60.0 + offset
            ds.PixelSpacing = [spec.pixel_spacing_mm, spec.pixel_spacing_mm]
            ds.Rows = spec.rows
            ds.Columns = spec.columns
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated = 16
            ds.BitsStored = 12
            ds.HighBit = 11
            ds.PixelRepresentation = 0
            ds.WindowCenter = 500
            ds.WindowWidth = 1000
            ds.PixelData = _pixels(spec, index, rng).tobytes()
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
            sops.append(sop_uid)
        generated.append(GeneratedSeries(series_uid, spec.description, tuple(files), tuple(sops)))
    return GeneratedStudy(out_dir, study_uid, tuple(generated))
