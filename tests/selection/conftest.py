"""A small header generator for selection tests: writes tiny but valid MR series (classic or Enhanced)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows: anterior->posterior, columns: head->feet
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


class StudyWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.study_uid = generate_uid()
        self.frame_of_reference = generate_uid()
        self.series_number = 0

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
        **attributes: Any,
    ) -> list[Path]:
        self.series_number += 1
        series_uid = generate_uid()
        number = series_number if series_number is not None else self.series_number
        folder = self.root / f"series{self.series_number:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        row, col = np.array(orientation[:3]), np.array(orientation[3:])
        normal = np.cross(row, col)
        positions = [normal * (first_position + i * spacing_mm) + np.array([0.0, -80.0, 60.0]) for i in range(n_slices)]
        paths: list[Path] = []
        if enhanced:
            ds = self._base(ENHANCED_MR, series_uid, number, description, rows, 1)
            ds.NumberOfFrames = n_slices
            ds.ImageType = attributes.pop("ImageType", ["ORIGINAL", "PRIMARY", "M", "NONE"])
            ds.AcquisitionContrast = attributes.pop("AcquisitionContrast", "UNKNOWN")
            shared = Dataset()
            timing = Dataset()
            if tr is not None:
                timing.RepetitionTime = tr
            shared.MRTimingAndRelatedParametersSequence = DicomSequence([timing])
            orient = Dataset()
            orient.ImageOrientationPatient = list(orientation)
            shared.PlaneOrientationSequence = DicomSequence([orient])
            measures = Dataset()
            measures.PixelSpacing = [0.5, 0.5]
            measures.SliceThickness = spacing_mm
            shared.PixelMeasuresSequence = DicomSequence([measures])
            modifier = Dataset()
            modifier.InversionRecovery = attributes.pop("InversionRecovery", "NO")
            shared.MRModifierSequence = DicomSequence([modifier])
            ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
            frames = []
            for position in positions:
                frame = Dataset()
                plane = Dataset()
                plane.ImagePositionPatient = [float(v) for v in position]
                frame.PlanePositionSequence = DicomSequence([plane])
                echo = Dataset()
                if te is not None:
                    echo.EffectiveEchoTime = te
                frame.MREchoSequence = DicomSequence([echo])
                frames.append(frame)
            ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
            for key, value in attributes.items():
                setattr(ds, key, value)
            ds.PixelData = np.zeros((n_slices, rows, rows), np.uint16).tobytes()
            path = folder / "enhanced.dcm"
            ds.save_as(path, enforce_file_format=True)
            return [path]
        for index, position in enumerate(positions):
            ds = self._base(MR, series_uid, number, description, rows, index + 1)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
            if te is not None:
                ds.EchoTime = te
            if tr is not None:
                ds.RepetitionTime = tr
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "SK"
            ds.ImageOrientationPatient = list(orientation)
            ds.ImagePositionPatient = [float(v) for v in position]
            ds.PixelSpacing = [0.5, 0.5]
            ds.SliceThickness = spacing_mm
            for key, value in attributes.items():
                setattr(ds, key, value)
            ds.PixelData = np.full((rows, rows), index, np.uint16).tobytes()
            path = folder / f"{index + 1:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    def _base(self, sop_class: str, series_uid: str, number: int, description: str, rows: int, instance: int) -> Dataset:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = self.frame_of_reference
        ds.Modality = "MR"
        ds.SeriesNumber = number
        ds.InstanceNumber = instance
        ds.SeriesDescription = description
        ds.PatientID = "SEL-TEST"
        ds.Rows = rows
        ds.Columns = rows
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        return ds


@pytest.fixture
def study_writer(tmp_path: Path) -> Callable[[], StudyWriter]:
    counter = iter(range(1000))
    return lambda: StudyWriter(tmp_path / f"study{next(counter)}")
