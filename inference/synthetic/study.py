"""Write a multi-series MR DICOM study built on a lumbar phantom (sagittal T2, sagittal T1, axial T2).

The middle slice of the sagittal T2 series is the phantom of ``seed`` itself (its ground truth is in the
manifest); the neighbouring sagittal slices are the same anatomy seen off the midline (narrower canal,
smaller nuclei, fresh noise). Geometry is standard: sagittal ImageOrientationPatient
[0,1,0, 0,0,-1] (pixel rows head->feet, columns anterior->posterior), ImagePositionPatient stepping
along patient X; axial [1,0,0, 0,1,0] at the disc levels.

``part10_dataset``, ``set_grey_pixels`` and ``set_tse_acquisition`` are the building blocks of its
instances, public so that the test factory (tests/dicom_factory.py) builds its MR images the same way.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from inference.synthetic.phantom import Phantom, PhantomOptions, generate_phantom

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000-lossless": JPEG2000Lossless,
    "jpegls-lossless": JPEGLSLossless,
}
_SIGNAL_SCALE = 2000.0  # CSF (T2) ~ 2000 in the stored 16-bit pixels


@dataclass(frozen=True)
class SeriesManifest:
    series_uid: str
    series_number: int
    description: str  # "T2 TSE SAG", "T1 TSE SAG", "T2 TSE TRA"
    kind: str  # "sag_t2", "sag_t1", "ax_t2"
    files: tuple[Path, ...]  # in slice order (sagittal: patient right -> left; axial: head -> feet)
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class StudyManifest:
    out_dir: Path
    study_uid: str
    frame_of_reference_uid: str
    patient_id: str
    transfer_syntax: str  # key of TRANSFER_SYNTAXES
    series: tuple[SeriesManifest, ...]
    mid_sagittal_series_uid: str  # the sagittal T2 series
    mid_sagittal_index: int  # index into that series' files
    mid_sagittal_file: Path
    mid_sagittal_sop_uid: str
    phantom: Phantom  # image, labels and ground truth of the mid-sagittal T2 slice
    stored_scale: float  # stored pixel value = round(phantom.image * stored_scale)

    def series_by_kind(self, kind: str) -> SeriesManifest:
        for s in self.series:
            if s.kind == kind:
                return s
        raise KeyError(kind)

    @property
    def all_files(self) -> tuple[Path, ...]:
        return tuple(f for s in self.series for f in s.files)


class _Uids:
    """UIDs derived from an entropy string (reproducible) or random (default)."""

    def __init__(self, entropy: str | None) -> None:
        self._entropy = entropy
        self._n = 0

    def next(self) -> str:
        self._n += 1
        if self._entropy is None:
            return str(generate_uid())
        return str(generate_uid(entropy_srcs=[self._entropy, str(self._n)]))


def write_study(
    out_dir: str | Path,
    *,
    seed: int = 0,
    patient_name: str = "PHANTOM^LUMBAR",
    patient_id: str | None = None,
    patient_age: str = "045Y",
    patient_sex: str = "M",
    n_sagittal_slices: int = 9,
    n_t1_slices: int = 5,
    n_axial_slices: int = 5,
    rows: int = 512,
    cols: int = 512,
    slice_spacing_mm: float = 4.0,
    transfer_syntax: str = "explicit",
    grades: tuple[int, ...] | None = None,
    clean: bool = False,
    deterministic_uids: bool = False,
    study_date: str = "20250115",
    manufacturer: str = "BIANQUE-PHANTOM",
    institution: str = "Synthetic",
) -> StudyManifest:
    """Write the study as Part 10 files under ``out_dir`` (one sub-folder per series) and describe it.

    ``clean`` draws the phantom without noise/bias/rotation so that measurements equal the truth.
    ``deterministic_uids`` derives all UIDs from seed and patient fields (same call -> same UIDs).
    """
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}, not {transfer_syntax!r}")
    if n_sagittal_slices < 1 or n_sagittal_slices % 2 == 0:
        raise ValueError("n_sagittal_slices must be odd and >= 1 (the middle slice is the phantom)")
    if len(patient_age) != 4 or patient_age[-1] not in "DWMY":
        raise ValueError(f"patient_age must look like '045Y', not {patient_age!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pid = patient_id or f"PH{seed:06d}"
    uids = _Uids(
        hashlib.sha256(f"{seed}|{patient_name}|{pid}|{study_date}".encode()).hexdigest() if deterministic_uids else None
    )
    study_uid, frame_uid = uids.next(), uids.next()
    base_opt = PhantomOptions.clean(rows=rows, cols=cols, grades=grades) if clean else PhantomOptions(rows=rows, cols=cols, grades=grades)
    mid = generate_phantom(seed, base_opt)
    spacing = mid.pixel_spacing_mm[0]
    birth = _birth_date(study_date, patient_age)
    common = _Common(
        study_uid=study_uid, frame_uid=frame_uid, patient_name=patient_name, patient_id=pid,
        patient_age=patient_age, patient_sex=patient_sex, birth_date=birth, study_date=study_date,
        manufacturer=manufacturer, institution=institution, transfer_syntax=TRANSFER_SYNTAXES[transfer_syntax],
    )
    series: list[SeriesManifest] = []

    # sagittal T2 ------------------------------------------------------------------------------------
    half = n_sagittal_slices // 2
    t2_images: list[np.ndarray] = []
    for i in range(n_sagittal_slices):
        off = (i - half) * slice_spacing_mm
        if i == half:
            t2_images.append(mid.image)
        else:
            t2_images.append(generate_phantom(seed, replace(base_opt, lateral_mm=off, noise_seed=seed * 1000 + i)).image)
    series.append(_write_sagittal(
        out / "sag_t2", common, uids, t2_images, spacing, slice_spacing_mm, number=1, kind="sag_t2",
        description="T2 TSE SAG", te=100.0, tr=3000.0,
    ))
    # sagittal T1 ------------------------------------------------------------------------------------
    t1_half = n_t1_slices // 2
    t1_images = [
        generate_phantom(seed, replace(base_opt, weighting="T1", lateral_mm=(i - t1_half) * slice_spacing_mm,
                                       noise_seed=seed * 1000 + 500 + i)).image
        for i in range(n_t1_slices)
    ]
    series.append(_write_sagittal(
        out / "sag_t1", common, uids, t1_images, spacing, slice_spacing_mm, number=2, kind="sag_t1",
        description="T1 TSE SAG", te=10.0, tr=500.0, first_index=-t1_half,
    ))
    # axial T2 through the discs ----------------------------------------------------------------------
    if n_axial_slices > 0:
        series.append(_write_axial(out / "ax_t2", common, uids, mid, n_axial_slices, seed, number=3))
    t2 = series[0]
    return StudyManifest(
        out_dir=out, study_uid=study_uid, frame_of_reference_uid=frame_uid, patient_id=pid,
        transfer_syntax=transfer_syntax, series=tuple(series), mid_sagittal_series_uid=t2.series_uid,
        mid_sagittal_index=half, mid_sagittal_file=t2.files[half], mid_sagittal_sop_uid=t2.sop_instance_uids[half],
        phantom=mid, stored_scale=_SIGNAL_SCALE,
    )


@dataclass(frozen=True)
class _Common:
    study_uid: str
    frame_uid: str
    patient_name: str
    patient_id: str
    patient_age: str
    patient_sex: str
    birth_date: str
    study_date: str
    manufacturer: str
    institution: str
    transfer_syntax: UID


def _birth_date(study_date: str, age: str) -> str:
    d = _dt.date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:8]))
    n, unit = int(age[:3]), age[3]
    days = {"D": 1, "W": 7, "M": 30.44, "Y": 365.25}[unit] * n + 30
    return (d - _dt.timedelta(days=int(days))).strftime("%Y%m%d")


def part10_dataset(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """An instance with its Part 10 file meta (Explicit VR Little Endian) and its SOP Class/Instance UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    return ds


def set_grey_pixels(ds: Dataset, pixels: np.ndarray, *, bits_stored: int = 16) -> None:
    """Image Pixel module and Pixel Data for unsigned MONOCHROME2 ``pixels`` (16 bits allocated).

    ``pixels`` is rows x columns, or frames x rows x columns (then NumberOfFrames is set too).
    """
    px = np.asarray(pixels).astype(np.uint16)
    if px.ndim not in (2, 3):
        raise ValueError(f"pixels must be 2-D or 3-D (frames first), not {px.ndim}-D")
    if px.ndim == 3:
        ds.NumberOfFrames = int(px.shape[0])
    ds.Rows, ds.Columns = int(px.shape[-2]), int(px.shape[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = px.tobytes()
    ds["PixelData"].VR = "OW"


def set_tse_acquisition(
    ds: Dataset, *, te: float | None, tr: float | None, echo_train_length: int | None = None
) -> None:
    """MR Image module attributes of a 2-D turbo spin echo; TE/TR in ms (each left out when None)."""
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = ["SK", "SP"]
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    if tr is not None:
        ds.RepetitionTime = f"{tr:.1f}"
    if te is not None:
        ds.EchoTime = f"{te:.1f}"
    if echo_train_length is not None:
        ds.EchoTrainLength = echo_train_length


def _base_dataset(c: _Common, series_uid: str, sop_uid: str, number: int, description: str, te: float, tr: float) -> Dataset:
    ds = part10_dataset(MR_IMAGE_STORAGE, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = c.study_date
    ds.StudyTime = "101500"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"10{20 + number:02d}00"
    ds.AccessionNumber = "ACC" + hashlib.sha256(c.study_uid.encode()).hexdigest()[:8].upper()
    ds.Modality = "MR"
    ds.Manufacturer = c.manufacturer
    ds.InstitutionName = c.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = "PHANTOM1"
    ds.StudyDescription = "MR LUMBAR SPINE"
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.ManufacturerModelName = "SyntheticScanner"
    ds.PatientName = c.patient_name
    ds.PatientID = c.patient_id
    ds.PatientBirthDate = c.birth_date
    ds.PatientSex = c.patient_sex
    ds.PatientAge = c.patient_age
    ds.BodyPartExamined = "LSPINE"
    set_tse_acquisition(ds, te=te, tr=tr, echo_train_length=15 if te > 50 else 3)
    ds.SequenceName = "*tse2d1_15"
    ds.NumberOfAverages = "2"
    ds.ImagingFrequency = "63.6"
    ds.MagneticFieldStrength = "1.5"
    ds.ImagedNucleus = "1H"
    ds.FlipAngle = "150"
    ds.StudyInstanceUID = c.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = number
    ds.FrameOfReferenceUID = c.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    return ds


def _set_pixels(ds: Dataset, img: np.ndarray, ts: UID) -> None:
    px = np.clip(np.round(img * _SIGNAL_SCALE), 0, 65535).astype(np.uint16)
    lo, hi = float(np.percentile(px, 1)), float(np.percentile(px, 99.5))
    ds.WindowCenter = f"{(lo + hi) / 2:.0f}"
    ds.WindowWidth = f"{max(hi - lo, 1.0):.0f}"
    ds.SmallestImagePixelValue = int(px.min())
    ds.LargestImagePixelValue = int(px.max())
    ds["SmallestImagePixelValue"].VR = "US"
    ds["LargestImagePixelValue"].VR = "US"
    set_grey_pixels(ds, px)
    if ts != ExplicitVRLittleEndian:
        _compress(ds, px, ts)


def _compress(ds: Dataset, px: np.ndarray, ts: UID) -> None:
    # lossless: the instance keeps its SOP Instance UID (pydicom would mint a new one), so the manifest holds
    if ts == JPEGLSLossless:
        try:
            ds.compress(ts, px, generate_instance_uid=False)
            return
        except Exception:  # pydicom needs pyjpegls for JPEG-LS; fall back to GDCM
            _compress_gdcm(ds, ts)
            return
    ds.compress(ts, px, generate_instance_uid=False)


def _compress_gdcm(ds: Dataset, ts: UID) -> None:
    import io
    import tempfile

    import gdcm  # python-gdcm
    from pydicom import dcmread

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        ds.save_as(src, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(src))
        if not reader.Read():
            raise RuntimeError("GDCM could not read the image it was asked to compress")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLSLossless))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError("GDCM could not encode JPEG-LS lossless")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(dst))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("GDCM could not write the JPEG-LS file")
        enc = dcmread(io.BytesIO(dst.read_bytes()))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = enc.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def _write_sagittal(
    folder: Path, c: _Common, uids: _Uids, images: list[np.ndarray], spacing: float, gap: float, *, number: int,
    kind: str, description: str, te: float, tr: float, first_index: int | None = None,
) -> SeriesManifest:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = uids.next()
    n = len(images)
    start = -(n // 2) if first_index is None else first_index
    rows, cols = images[0].shape
    files, sops = [], []
    for i, img in enumerate(images):
        sop = uids.next()
        ds = _base_dataset(c, series_uid, sop, number, description, te, tr)
        x = (start + i) * gap  # patient X (LPS: + = left); slices run right -> left
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [f"{x:.3f}", f"{-cols * spacing / 2:.3f}", f"{rows * spacing / 2:.3f}"]
        ds.SliceLocation = f"{x:.3f}"
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        ds.SliceThickness = f"{gap * 0.9:.2f}"
        ds.SpacingBetweenSlices = f"{gap:.2f}"
        ds.InstanceNumber = i + 1
        ds.AcquisitionNumber = 1
        ds.InStackPositionNumber = i + 1
        _set_pixels(ds, img, c.transfer_syntax)
        path = folder / f"IM{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        sops.append(sop)
    return SeriesManifest(series_uid, number, description, kind, tuple(files), tuple(sops))


def _axial_image(rng: np.random.Generator, size: int, spacing: float, disc: bool) -> np.ndarray:
    """A simple axial T2 slice: body outline, psoas, paraspinal muscles, disc or body, canal."""
    img = np.full((size, size), 0.01, np.float32)
    c = size / 2
    mm = 1.0 / spacing
    cv2.ellipse(img, (int(c), int(c)), (int(150 * mm), int(105 * mm)), 0, 0, 360, 0.8, -1)  # fat
    cv2.ellipse(img, (int(c), int(c)), (int(135 * mm), int(92 * mm)), 0, 0, 360, 0.35, -1)  # abdomen
    cy = c + 20 * mm
    for sx in (-1, 1):
        cv2.ellipse(img, (int(c + sx * 32 * mm), int(cy - 5 * mm)), (int(14 * mm), int(20 * mm)), 0, 0, 360, 0.2, -1)
        cv2.ellipse(img, (int(c + sx * 30 * mm), int(cy + 50 * mm)), (int(25 * mm), int(22 * mm)), 0, 0, 360, 0.2, -1)
    val = 0.25 if disc else 0.45
    cv2.ellipse(img, (int(c), int(cy - 5 * mm)), (int(22 * mm), int(17 * mm)), 0, 0, 360, val, -1)
    if disc:
        cv2.ellipse(img, (int(c), int(cy - 6 * mm)), (int(12 * mm), int(8 * mm)), 0, 0, 360, 0.6, -1)
    cv2.circle(img, (int(c), int(cy + 20 * mm)), int(8 * mm), 1.0, -1)
    noise = 0.02
    n1 = rng.standard_normal(img.shape).astype(np.float32) * noise
    n2 = rng.standard_normal(img.shape).astype(np.float32) * noise
    return np.sqrt((cv2.GaussianBlur(img, (0, 0), 0.8) + n1) ** 2 + n2**2)


def _write_axial(folder: Path, c: _Common, uids: _Uids, mid: Phantom, n: int, seed: int, *, number: int) -> SeriesManifest:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 7919)
    series_uid = uids.next()
    size, spacing = 320, 0.7
    rows_mid = mid.image.shape[0]
    sag_spacing = mid.pixel_spacing_mm[0]
    # z of each disc centre (sagittal row -> patient Z), repeated/trimmed to n slices
    zs = [rows_mid * sag_spacing / 2 - (d.anterior_mid[0] + d.posterior_mid[0]) / 2 * sag_spacing for d in mid.discs]
    zs = (zs * math.ceil(n / len(zs)))[:n] if n > len(zs) else zs[len(zs) - n:]
    zs = sorted(zs, reverse=True)
    files, sops = [], []
    for i, z in enumerate(zs):
        sop = uids.next()
        ds = _base_dataset(c, series_uid, sop, number, "T2 TSE TRA", 100.0, 3500.0)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{-size * spacing / 2:.3f}", f"{-size * spacing / 2:.3f}", f"{z:.3f}"]
        ds.SliceLocation = f"{z:.3f}"
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        ds.SliceThickness = "4.00"
        ds.InstanceNumber = i + 1
        ds.AcquisitionNumber = 1
        _set_pixels(ds, _axial_image(rng, size, spacing, disc=True), c.transfer_syntax)
        path = folder / f"IM{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        sops.append(sop)
    return SeriesManifest(series_uid, number, "T2 TSE TRA", "ax_t2", tuple(files), tuple(sops))
