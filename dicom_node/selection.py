"""Series selection: find the sagittal T2 series of a lumbar study from its headers alone.

Pure: works on pydicom datasets read with ``stop_before_pixels=True`` (classic single-frame MR and
Enhanced MR multi-frame) and never touches pixel data, the network or the disk (except
:func:`read_headers`, which only reads headers). Every series gets a :class:`SeriesDecision` with the
reasons it was taken or refused, so an admin can see why (``bianque select STUDY_DIR``).

Rules (all in :class:`SelectionRules`, the ``[selection]`` section of the configuration):

* only MR images (MR, Enhanced MR, Legacy Converted Enhanced MR); our own SEG/SR/report images and any
  other SOP class are refused;
* sagittal: the slice normal (row x column of ImageOrientationPatient) within
  ``max_obliquity_deg`` of the patient's left-right axis, whatever the sign of the direction cosines;
* T2 weighted: AcquisitionContrast when the scanner states it (Enhanced MR), otherwise EchoTime and
  RepetitionTime (classic or from the MR functional groups) above ``t2_min_echo_time_ms`` /
  ``t2_min_repetition_time_ms``; T2 FLAIR (long-TI inversion recovery) is refused because ΔSI needs
  bright CSF;
* not fat suppressed: ScanOptions FS, spectrally selected suppression/excitation, short-TI
  inversion recovery (STIR), Dixon water/fat images, descriptions matching ``fat_suppression_patterns``;
* not a localiser: ImageType LOCALIZER, fewer than ``min_slices`` slices, descriptions matching
  ``localizer_patterns``, or several planes in one series;
* not another body part (BodyPartExamined naming the cervical/thoracic spine or the head);
* tie-break between accepted series: the first of ``preferred_description_patterns`` that matches the
  SeriesDescription (or ProtocolName), then images spanning at least ``min_head_feet_mm`` head-feet
  before a smaller field of view, then the higher SeriesNumber (a repeat is usually the better
  acquisition), then the SeriesInstanceUID for a deterministic answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference.dicom_pixels import read_geometry

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
MR_SOP_CLASSES: frozenset[str] = frozenset(
    {MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE, LEGACY_ENHANCED_MR_IMAGE_STORAGE}
)
MULTIFRAME_MR_SOP_CLASSES: frozenset[str] = frozenset(
    {ENHANCED_MR_IMAGE_STORAGE, LEGACY_ENHANCED_MR_IMAGE_STORAGE}
)

_B = r"(?<![A-Za-z0-9])"  # word boundary that treats '_' as a separator (t2_tse_sag_fs)
_E = r"(?![A-Za-z0-9])"


class SelectionRules(BaseModel):
    """The ``[selection]`` section of the configuration (every field has a sound default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_obliquity_deg: float = Field(
        25.0, ge=0.0, le=60.0, description="largest angle between slice normal and patient left-right axis"
    )
    t2_min_echo_time_ms: float = Field(60.0, gt=0.0, description="TE at or above which a series counts as T2")
    t2_min_repetition_time_ms: float = Field(
        1000.0, gt=0.0, description="TR at or above which a series counts as T2 (3D TSE/SPACE use ~1-2 s)"
    )
    stir_max_inversion_time_ms: float = Field(
        300.0, gt=0.0, description="inversion recovery with TI up to this is STIR (fat suppressed)"
    )
    flair_min_inversion_time_ms: float = Field(
        1200.0, gt=0.0, description="inversion recovery with TI from this is FLAIR (CSF suppressed)"
    )
    min_slices: int = Field(3, ge=1, description="fewer slices than this: treated as a localiser")
    accept_derived: bool = Field(False, description="accept DERIVED images (reformats) as candidates")
    exclude_fat_suppressed: bool = True
    fat_suppression_patterns: tuple[str, ...] = (
        _B + r"(stir|tirm|spir|spair|fs|fat[ _-]?sat\w*|fatsup\w*|dixon|ideal|mdixon|flex|water|fat)" + _E,
        r"^\*?tir\d",  # Siemens SequenceName of TIRM/STIR
    )
    localizer_patterns: tuple[str, ...] = (
        _B + r"(loc|localiz\w*|localis\w*|scout|survey|tri[ _-]?pilot|3[ _-]?plane|3pl|aahead\w*)" + _E,
    )
    refused_body_parts: tuple[str, ...] = ("CSPINE", "TSPINE", "HEAD", "BRAIN", "NECK", "ORBIT", "KNEE")
    preferred_description_patterns: tuple[str, ...] = (
        r"t2.*sag|sag.*t2",
        r"t2",
        r"sag",
    )
    excluded_description_patterns: tuple[str, ...] = Field(
        (), description="series whose description/protocol matches any of these are refused"
    )
    mid_slice: Literal["centre", "best"] = Field(
        "centre", description="mid-sagittal slice: geometric centre, or best of the central few by segmentation"
    )
    best_candidates: int = Field(5, ge=1, le=15, description="slices around the centre segmented in 'best' mode")
    min_head_feet_mm: float = Field(
        180.0, ge=0.0, description="tie-break: candidates whose images span less than this head-feet (a small "
        "field of view on the lumbosacral junction) come after those covering L1-S1")

    @field_validator(
        "fat_suppression_patterns", "localizer_patterns", "preferred_description_patterns", "excluded_description_patterns"
    )
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return value

    @field_validator("refused_body_parts")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in value)


def rules_from_config(selection: Any) -> SelectionRules:
    """SelectionRules from the configuration's ``[selection]`` section (dicom_node.config.SelectionConfig):
    ``include_series_regex`` (preferred descriptions, in order; replaces the defaults when given),
    ``exclude_series_regex`` and ``mid_slice``; any field of SelectionRules of the same name is taken too."""
    if selection is None:
        return SelectionRules()
    if isinstance(selection, SelectionRules):
        return selection
    data = selection.model_dump() if hasattr(selection, "model_dump") else dict(selection)
    values: dict[str, Any] = {k: v for k, v in data.items() if k in SelectionRules.model_fields}
    if data.get("include_series_regex"):
        values["preferred_description_patterns"] = tuple(data["include_series_regex"])
    if data.get("exclude_series_regex"):
        values["excluded_description_patterns"] = tuple(data["exclude_series_regex"])
    if data.get("mid_slice") in ("center", "centre"):
        values["mid_slice"] = "centre"
    return SelectionRules(**values)


# --------------------------------------------------------------------------------------------------
# header access (classic + Enhanced MR functional groups)


def lookup(ds: Dataset, keyword: str) -> Any:
    """Value of ``keyword`` at the top level, else in the shared, else in the first per-frame
    functional group (one nesting level of macro sequences, as Enhanced MR stores them)."""
    value = ds.get(keyword)
    if value is not None and value != "":
        return value
    for groups_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(groups_keyword)
        if not groups:
            continue
        found = _lookup_in_group(groups[0], keyword)
        if found is not None:
            return found
    return None


def _lookup_in_group(group: Dataset, keyword: str) -> Any:
    value = group.get(keyword)
    if value is not None and value != "":
        return value
    for element in group:
        if element.VR == "SQ" and element.value:
            item = element.value[0]
            value = item.get(keyword)
            if value is not None and value != "":
                return value
    return None


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or getattr(value, "VM", 1) > 1:
        try:
            value = list(value)[0]
        except (TypeError, IndexError):
            return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(str(v) for v in value)
    except TypeError:
        return (str(value),)


def _text(ds: Dataset, keyword: str) -> str:
    value = lookup(ds, keyword)
    return " ".join(_strings(value)).strip()


def frame_orientations(ds: Dataset) -> list[np.ndarray | None]:
    """One ImageOrientationPatient (6 floats) per frame (a classic image has one frame)."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        shared_iop = _group_iop(shared[0]) if shared else None
        return [(_group_iop(item) if _group_iop(item) is not None else shared_iop) for item in per_frame]
    iop = ds.get("ImageOrientationPatient")
    if iop is None and shared:
        return [_group_iop(shared[0])]
    return [_as_vector(iop, 6)]


def head_feet_extent_mm(ds: Dataset) -> float | None:
    """How far the image plane reaches along the patient's head-feet axis (mm), or None when unknown."""
    geometry = read_geometry(ds, 0)  # the first frame of a multi-frame image; a classic image's own attributes
    if geometry.orientation is None or not geometry.spacing_known or not ds.get("Rows") or not ds.get("Columns"):
        return None
    iop, (row_spacing, column_spacing) = geometry.orientation, geometry.pixel_spacing_mm
    # rows advance along the column direction (iop[3:]), columns along the row direction (iop[:3])
    return float(abs(iop[2]) * int(ds.Columns) * column_spacing + abs(iop[5]) * int(ds.Rows) * row_spacing)


def frame_positions(ds: Dataset) -> list[np.ndarray | None]:
    """One ImagePositionPatient (3 floats) per frame."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        out: list[np.ndarray | None] = []
        for item in per_frame:
            seq = item.get("PlanePositionSequence")
            out.append(_as_vector(seq[0].get("ImagePositionPatient"), 3) if seq else None)
        return out
    return [_as_vector(ds.get("ImagePositionPatient"), 3)]


def _group_iop(group: Dataset) -> np.ndarray | None:
    seq = group.get("PlaneOrientationSequence")
    if not seq:
        return None
    return _as_vector(seq[0].get("ImageOrientationPatient"), 6)


def _as_vector(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        vec = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if vec.shape != (n,) or not np.all(np.isfinite(vec)):
        return None
    return vec


def slice_normal(iop: np.ndarray) -> np.ndarray | None:
    """Unit normal of a slice (row cosine x column cosine), or None for a degenerate orientation."""
    normal = np.cross(iop[:3], iop[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-3:
        return None
    return normal / norm


def plane_name(normal: np.ndarray, max_obliquity_deg: float) -> str:
    """'sagittal', 'coronal' or 'axial' when the normal is within the tolerance of an axis, else 'oblique'."""
    axis = int(np.argmax(np.abs(normal)))
    angle = math.degrees(math.acos(min(1.0, abs(float(normal[axis])))))
    if angle > max_obliquity_deg:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def obliquity_deg(normal: np.ndarray) -> float:
    """Angle between the slice normal and the patient's left-right axis."""
    return math.degrees(math.acos(min(1.0, abs(float(normal[0])))))


# --------------------------------------------------------------------------------------------------
# data types


@dataclass(frozen=True)
class InstanceHeader:
    """One file's header (read without pixel data) and where it lies."""

    path: Path
    dataset: Dataset

    @property
    def series_uid(self) -> str:
        return str(self.dataset.get("SeriesInstanceUID", ""))

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.get("SOPInstanceUID", ""))


@dataclass(frozen=True)
class SliceRef:
    """One 2-D slice of the chosen series: a file, and the frame in it (None for single-frame)."""

    path: Path
    sop_instance_uid: str
    frame_index: int | None  # 0-based frame of an Enhanced MR instance
    position_mm: float  # ImagePositionPatient projected on the slice normal


def stack_spacing_mm(slices: Sequence[SliceRef]) -> float | None:
    """Median distance between neighbouring slice positions of a stack (None below two positions)."""
    positions = np.unique(np.round([s.position_mm for s in slices], 3))
    if positions.size < 2:
        return None
    return float(np.median(np.diff(positions)))


@dataclass(frozen=True)
class SeriesDecision:
    series_uid: str
    series_number: int | None
    description: str
    sop_class: str
    n_instances: int
    n_slices: int
    plane: str  # sagittal/coronal/axial/oblique/mixed/unknown
    weighting: str  # T2/T1/PD/FLAIR/unknown/...
    accepted: bool
    reasons: tuple[str, ...]  # why refused (accepted: the evidence it was taken on)
    preference_rank: int = 0  # index of the matching preferred description pattern (len = none)
    head_feet_mm: float | None = None  # head-feet extent of the images (tie-break)
    chosen: bool = False


@dataclass(frozen=True)
class StudySelection:
    study_uid: str
    decisions: tuple[SeriesDecision, ...]
    chosen: SeriesDecision | None
    reason: str  # one line: why this series, or why none
    unreadable: tuple[str, ...] = field(default_factory=tuple)  # files that are not DICOM


class NoSuitableSeries(Exception):
    """The study has no series that passes the selection rules (a normal outcome, not a fault)."""

    def __init__(self, selection: StudySelection) -> None:
        super().__init__(selection.reason)
        self.selection = selection


# --------------------------------------------------------------------------------------------------
# reading headers


def iter_dicom_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files under the given files/folders (recursively), in a stable order."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path


def read_headers(paths: Iterable[Path]) -> tuple[list[InstanceHeader], list[str]]:
    """Headers (no pixel data) of every DICOM file under ``paths``; second value: files that are not DICOM."""
    headers: list[InstanceHeader] = []
    unreadable: list[str] = []
    for path in iter_dicom_files(paths):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
            unreadable.append(f"{path}: {exc.__class__.__name__}: {exc}")
            continue
        if "SOPInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
            unreadable.append(f"{path}: no SOP or Series Instance UID")
            continue
        headers.append(InstanceHeader(path=path, dataset=ds))
    return headers, unreadable


def group_by_study(headers: Iterable[InstanceHeader]) -> dict[str, list[InstanceHeader]]:
    studies: dict[str, list[InstanceHeader]] = {}
    for header in headers:
        studies.setdefault(str(header.dataset.get("StudyInstanceUID", "")), []).append(header)
    return studies


# --------------------------------------------------------------------------------------------------
# rules


def _instance_sort_key(header: InstanceHeader) -> tuple[int, str]:
    number = header.dataset.get("InstanceNumber")
    try:
        n = int(number) if number not in (None, "") else 1 << 30
    except (TypeError, ValueError):
        n = 1 << 30
    return n, header.sop_instance_uid


def _matches(patterns: Sequence[str], texts: Sequence[str]) -> str | None:
    for pattern in patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        for text in texts:
            if text and regex.search(text):
                return f"{text!r} matches {pattern!r}"
    return None


def _n_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _series_number(ds: Dataset) -> int | None:
    try:
        value = ds.get("SeriesNumber")
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _inversion_time_ms(ds: Dataset) -> float | None:
    ti = _float(lookup(ds, "InversionTime"))
    if ti is None:
        ti = _float(lookup(ds, "InversionTimes"))
    return ti


def _is_inversion_recovery(ds: Dataset) -> bool:
    if "IR" in _strings(lookup(ds, "ScanningSequence")):
        return True
    return str(lookup(ds, "InversionRecovery") or "").upper() == "YES"


def assess_weighting(ds: Dataset, rules: SelectionRules) -> tuple[str, bool, str]:
    """(weighting, is_t2, reason) from one representative header."""
    te = _float(lookup(ds, "EchoTime"))
    if te is None:
        te = _float(lookup(ds, "EffectiveEchoTime"))
    tr = _float(lookup(ds, "RepetitionTime"))
    inversion = _is_inversion_recovery(ds)
    ti = _inversion_time_ms(ds)
    contrast = str(lookup(ds, "AcquisitionContrast") or "").upper()
    timing = f"TE {te:g} ms" if te is not None else "TE unknown"
    timing += f", TR {tr:g} ms" if tr is not None else ", TR unknown"

    if inversion and ti is not None and ti >= rules.flair_min_inversion_time_ms:
        return "FLAIR", False, f"T2 FLAIR (inversion recovery, TI {ti:g} ms): CSF is suppressed, ΔSI needs bright CSF"
    if contrast == "FLUID_ATTENUATED":
        return "FLAIR", False, "AcquisitionContrast FLUID_ATTENUATED (FLAIR): ΔSI needs bright CSF"
    if contrast == "T2":
        return "T2", True, f"AcquisitionContrast T2 ({timing})"
    if contrast and contrast not in {"MIXED", "UNKNOWN"}:
        names = {"PROTON_DENSITY": "PD", "T2_STAR": "T2*"}
        return names.get(contrast, contrast), False, f"AcquisitionContrast {contrast}, not T2"
    if te is not None and tr is not None:
        if te >= rules.t2_min_echo_time_ms and tr >= rules.t2_min_repetition_time_ms:
            return "T2", True, f"T2 weighted ({timing})"
        if te < 30 and tr < rules.t2_min_repetition_time_ms:
            kind = "T1"
        elif te < rules.t2_min_echo_time_ms and tr >= rules.t2_min_repetition_time_ms:
            kind = "PD"
        else:
            kind = "other"
        return kind, False, (
            f"{kind} weighted ({timing}); T2 needs TE >= {rules.t2_min_echo_time_ms:g} ms"
            f" and TR >= {rules.t2_min_repetition_time_ms:g} ms"
        )
    texts = (_text(ds, "SeriesDescription"), _text(ds, "ProtocolName"))
    if _matches([_B + r"t2" + r"(?![0-9*])"], texts) and not _matches([_B + r"t1" + _E], texts):
        return "T2", True, f"T2 by description only ({timing})"
    return "unknown", False, f"weighting unknown ({timing}, no AcquisitionContrast, description names no T2)"


def assess_fat_suppression(ds: Dataset, rules: SelectionRules) -> str | None:
    """Reason the series is fat suppressed (or a Dixon water/fat image), or None."""
    options = {s.upper() for s in _strings(lookup(ds, "ScanOptions"))}
    if options & {"FS", "FSA", "FSP", "FSS", "FAT_SAT", "SPECIAL"}:
        return f"fat suppressed (ScanOptions {'/'.join(sorted(options))})"
    suppression = str(lookup(ds, "SpectrallySelectedSuppression") or "").upper()
    if suppression in {"FAT", "WATER", "FAT_AND_WATER"}:
        return f"fat/water suppressed (SpectrallySelectedSuppression {suppression})"
    excitation = str(lookup(ds, "SpectrallySelectedExcitation") or "").upper()
    if excitation in {"WATER", "FAT"}:
        return f"spectrally selective excitation {excitation} (fat suppressed)"
    if _is_inversion_recovery(ds):
        ti = _inversion_time_ms(ds)
        if ti is None or ti <= rules.stir_max_inversion_time_ms:
            return "STIR (short-TI inversion recovery)" + (f", TI {ti:g} ms" if ti is not None else "")
    image_type = {s.upper() for s in _strings(ds.get("ImageType"))} | {
        s.upper() for s in _strings(lookup(ds, "FrameType"))
    }
    dixon = image_type & {"WATER", "FAT", "W", "F", "FAT_FRACTION", "WATER_FRACTION"}
    if dixon:
        return f"Dixon {'/'.join(sorted(dixon))} image (ImageType)"
    texts = [_text(ds, k) for k in ("SeriesDescription", "ProtocolName", "SequenceName", "PulseSequenceName")]
    match = _matches(rules.fat_suppression_patterns, texts)
    if match:
        return f"fat suppressed by name ({match})"
    return None


def assess_localizer(ds: Dataset, n_slices: int, rules: SelectionRules) -> str | None:
    image_type = {s.upper() for s in _strings(ds.get("ImageType"))} | {
        s.upper() for s in _strings(lookup(ds, "FrameType"))
    }
    if "LOCALIZER" in image_type:
        return "localiser (ImageType LOCALIZER)"
    texts = [_text(ds, "SeriesDescription"), _text(ds, "ProtocolName")]
    match = _matches(rules.localizer_patterns, texts)
    if match:
        return f"localiser by name ({match})"
    if n_slices < rules.min_slices:
        return f"only {n_slices} slice(s), fewer than selection.min_slices = {rules.min_slices} (localiser?)"
    return None


def decide_series(instances: Sequence[InstanceHeader], rules: SelectionRules) -> SeriesDecision:
    """The decision for one series (all instances share its SeriesInstanceUID)."""
    instances = sorted(instances, key=_instance_sort_key)
    first = instances[0].dataset
    sop_class = str(first.get("SOPClassUID", ""))
    description = _text(first, "SeriesDescription")
    n_slices = sum(_n_frames(h.dataset) for h in instances)
    reasons: list[str] = []
    evidence: list[str] = []
    extent = head_feet_extent_mm(first)

    def decision(plane: str, weighting: str, accepted: bool, rank: int = 0) -> SeriesDecision:
        return SeriesDecision(
            series_uid=instances[0].series_uid,
            series_number=_series_number(first),
            description=description,
            sop_class=sop_class,
            n_instances=len(instances),
            n_slices=n_slices,
            plane=plane,
            weighting=weighting,
            accepted=accepted,
            reasons=tuple(evidence if accepted else reasons),
            preference_rank=rank,
            head_feet_mm=extent,
        )

    classes = {str(h.dataset.get("SOPClassUID", "")) for h in instances}
    if not classes <= MR_SOP_CLASSES:
        names = ", ".join(sorted(_sop_class_name(c) for c in classes - MR_SOP_CLASSES))
        reasons.append(f"not an MR image ({names})")
        return decision("unknown", "n/a", False)

    # orientation
    normals: list[np.ndarray] = []
    missing_orientation = False
    for header in instances:
        for iop in frame_orientations(header.dataset):
            normal = slice_normal(iop) if iop is not None else None
            if normal is None:
                missing_orientation = True
            else:
                normals.append(normal)
    distinct = _distinct_normals(normals)
    if missing_orientation or not normals:
        plane = "unknown"
        reasons.append("no usable ImageOrientationPatient")
    elif len(distinct) > 1:
        plane = "mixed"
        reasons.append(f"{len(distinct)} different slice orientations in one series (localiser?)")
    else:
        normal = distinct[0]
        plane = plane_name(normal, rules.max_obliquity_deg)
        angle = obliquity_deg(normal)
        if angle <= rules.max_obliquity_deg:
            plane = "sagittal"
            evidence.append(f"sagittal (normal {angle:.0f}° from left-right)")
        else:
            reasons.append(
                f"not sagittal ({plane}; normal {angle:.0f}° from left-right,"
                f" selection.max_obliquity_deg = {rules.max_obliquity_deg:g})"
            )

    weighting, is_t2, why = assess_weighting(first, rules)
    (evidence if is_t2 else reasons).append(why)

    if rules.exclude_fat_suppressed:
        fat = assess_fat_suppression(first, rules)
        if fat:
            reasons.append(fat)

    localizer = assess_localizer(first, n_slices, rules)
    if localizer:
        reasons.append(localizer)

    image_type = [s.upper() for s in _strings(first.get("ImageType"))]
    if image_type and image_type[0] == "DERIVED" and not rules.accept_derived:
        joined = "\\".join(image_type)
        reasons.append(f"derived image (ImageType {joined}; selection.accept_derived = false)")

    body_part = str(first.get("BodyPartExamined", "") or "").strip().upper()
    if body_part and body_part in rules.refused_body_parts:
        reasons.append(f"body part {body_part}, not the lumbar spine")

    texts = [description, _text(first, "ProtocolName")]
    excluded = _matches(rules.excluded_description_patterns, texts)
    if excluded:
        reasons.append(f"excluded by selection.exclude_series_regex ({excluded})")
    rank = len(rules.preferred_description_patterns)
    for index, pattern in enumerate(rules.preferred_description_patterns):
        if _matches([pattern], texts):
            rank = index
            where = "description" if _matches([pattern], texts[:1]) else "protocol name"
            evidence.append(f"{where} matches preferred pattern #{index + 1} {pattern!r}")
            break
    evidence.append(f"{n_slices} slices")
    if extent is not None:
        short = extent < rules.min_head_feet_mm
        evidence.append(f"{extent:.0f} mm head-feet" + (f" (under selection.min_head_feet_mm = "
                                                        f"{rules.min_head_feet_mm:g}: ranked after full fields)" if short else ""))
    return decision(plane, weighting, not reasons, rank)


def _distinct_normals(normals: Sequence[np.ndarray], tolerance_deg: float = 5.0) -> list[np.ndarray]:
    distinct: list[np.ndarray] = []
    limit = math.cos(math.radians(tolerance_deg))
    for normal in normals:
        if not any(abs(float(np.dot(normal, d))) >= limit for d in distinct):
            distinct.append(normal)
    return distinct


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name if uid else "no SOP Class UID"
    return name or uid


def select_series(headers: Iterable[InstanceHeader], rules: SelectionRules | None = None) -> StudySelection:
    """Decide every series of one study and choose the sagittal T2 series (or none, with the reason)."""
    rules = rules or SelectionRules()
    headers = list(headers)
    study_uids = {str(h.dataset.get("StudyInstanceUID", "")) for h in headers}
    if len(study_uids) > 1:
        raise ValueError(f"select_series got {len(study_uids)} studies; select one study at a time")
    by_series: dict[str, list[InstanceHeader]] = {}
    for header in headers:
        by_series.setdefault(header.series_uid, []).append(header)
    decisions = [decide_series(instances, rules) for instances in by_series.values()]
    accepted = [d for d in decisions if d.accepted]
    chosen: SeriesDecision | None = None
    if accepted:
        best = min(
            accepted,
            key=lambda d: (
                d.preference_rank,
                d.head_feet_mm is not None and d.head_feet_mm < rules.min_head_feet_mm,
                -(d.series_number if d.series_number is not None else -1),
                d.series_uid,
            ),
        )
        chosen = SeriesDecision(**{**best.__dict__, "chosen": True})
        decisions = [chosen if d is best else d for d in decisions]
        others = len(accepted) - 1
        reason = f"series {best.series_number} {best.description!r}: " + "; ".join(best.reasons)
        if others:
            reason += (f" (chosen over {others} other candidate(s) by description pattern, head-feet coverage, "
                       "then series number)")
    elif not decisions:
        reason = "no DICOM instances in the study"
    else:
        reason = "no lumbar sagittal T2 series: " + "; ".join(
            f"series {d.series_number} {d.description!r}: {d.reasons[0] if d.reasons else 'refused'}" for d in decisions
        )
    decisions.sort(key=lambda d: (d.series_number if d.series_number is not None else 1 << 30, d.series_uid))
    return StudySelection(
        study_uid=next(iter(study_uids), ""), decisions=tuple(decisions), chosen=chosen, reason=reason
    )


# --------------------------------------------------------------------------------------------------
# the slice stack of the chosen series


def series_slices(instances: Sequence[InstanceHeader]) -> list[SliceRef]:
    """Every slice of a series (frames of Enhanced MR included), ordered along the slice normal.

    Slices at the same position (a second echo, a repeated frame) are kept once, the first by
    InstanceNumber/frame order.
    """
    instances = sorted(instances, key=_instance_sort_key)
    normal: np.ndarray | None = None
    slices: list[SliceRef] = []
    for header in instances:
        ds = header.dataset
        multiframe = "PerFrameFunctionalGroupsSequence" in ds or _n_frames(ds) > 1
        orientations = frame_orientations(ds)
        positions = frame_positions(ds)
        for index, position in enumerate(positions):
            iop = orientations[index] if index < len(orientations) else orientations[0]
            if normal is None and iop is not None:
                normal = slice_normal(iop)
            if position is None or normal is None:
                raise ValueError(
                    f"instance {header.sop_instance_uid} frame {index + 1}: no ImagePositionPatient/"
                    "ImageOrientationPatient, cannot place the slice"
                )
            slices.append(
                SliceRef(
                    path=header.path,
                    sop_instance_uid=header.sop_instance_uid,
                    frame_index=index if multiframe else None,
                    position_mm=float(np.dot(position, normal)),
                )
            )
    slices.sort(key=lambda s: s.position_mm)
    unique: list[SliceRef] = []
    for ref in slices:
        if unique and abs(ref.position_mm - unique[-1].position_mm) < 1e-3:
            continue
        unique.append(ref)
    return unique


def center_index(slices: Sequence[SliceRef]) -> int:
    """Index of the slice nearest the geometric centre of the stack (the mid-sagittal slice).

    With an even number of equally spaced slices two are equally near; the lower index wins.
    """
    if not slices:
        raise ValueError("empty slice stack")
    positions = np.array([s.position_mm for s in slices])
    centre = (positions.min() + positions.max()) / 2.0
    distances = np.abs(positions - centre)
    return int(np.flatnonzero(distances <= distances.min() + 1e-6)[0])


def central_indices(slices: Sequence[SliceRef], count: int) -> list[int]:
    """The ``count`` slices nearest the centre, in stack order."""
    centre = center_index(slices)
    order = sorted(range(len(slices)), key=lambda i: (abs(i - centre), i))
    return sorted(order[: max(1, count)])
