"""The analysed source slice: checks, metadata copy for highdicom, frame references and pixels."""

from __future__ import annotations

import copy

import numpy as np
from pydicom import Dataset
from pydicom.uid import UID, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage, MRImageStorage

from sr_templates.codes import NUMBER_OF_CLASSES


# Type 2 attributes of the Patient and General Study modules that highdicom copies from the source into
# every result object. De-identified and some older files leave them out entirely; the results then
# carry them empty (Type 2 allows that) instead of failing.
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "StudyID", "AccessionNumber", "ReferringPhysicianName")


# the MR image classes the node analyses (dicom_node.selection.MR_SOP_CLASSES accepts the same three)
MR_STORAGE_CLASSES = frozenset({MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage})


class OutputEncodingError(ValueError):
    """The inputs cannot be encoded as DICOM results; the message says what to check."""


def _describe(source: Dataset) -> str:
    return f"SOP instance {source.get('SOPInstanceUID', '?')} of series {source.get('SeriesInstanceUID', '?')}"


def is_multiframe(source: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in source or int(source.get("NumberOfFrames", 1) or 1) > 1


def check_frame_index(source: Dataset, frame_index: int | None) -> int | None:
    """Validate ``frame_index`` (0-based) against the source; None for single-frame sources."""
    n_frames = int(source.get("NumberOfFrames", 1) or 1)
    if not is_multiframe(source):
        if frame_index not in (None, 0):
            raise OutputEncodingError(f"frame_index {frame_index} given for single-frame {_describe(source)}")
        return None
    if frame_index is None:
        raise OutputEncodingError(f"{_describe(source)} is multi-frame ({n_frames} frames): frame_index is required")
    if not 0 <= frame_index < n_frames:
        raise OutputEncodingError(f"frame_index {frame_index} outside 0..{n_frames - 1} for {_describe(source)}")
    return frame_index


def frame_numbers(frame_index: int | None) -> list[int] | None:
    """DICOM Referenced Frame Number list (1-based) for a 0-based frame index, or None."""
    return None if frame_index is None else [frame_index + 1]


def check_label_map(source: Dataset, label_map: np.ndarray) -> np.ndarray:
    """Return the label map as uint8 after checking shape (Rows, Columns) and values 0..13."""
    arr = np.asarray(label_map)
    shape = (int(source.Rows), int(source.Columns))
    if arr.ndim != 2 or arr.shape != shape:
        raise OutputEncodingError(
            f"label map shape {arr.shape} does not match the source grid {shape} of {_describe(source)}; "
            "map the network output back to the source pixel grid first")
    if not np.issubdtype(arr.dtype, np.integer):
        raise OutputEncodingError(f"label map must hold integer class values, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= NUMBER_OF_CLASSES):
        raise OutputEncodingError(
            f"label map values must lie in 0..{NUMBER_OF_CLASSES - 1}, got {int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.uint8)


def header_copy(source: Dataset) -> Dataset:
    """Deep copy of ``source`` without pixel data; absent ``TYPE2_PATIENT_STUDY`` attributes added empty."""
    src = Dataset()
    for elem in source:
        if elem.keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            continue
        src.add(copy.deepcopy(elem))
    src.file_meta = copy.deepcopy(getattr(source, "file_meta", Dataset()))
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in src:
            setattr(src, keyword, None)
    return src


def metadata_copy(source: Dataset, frame_index: int | None = None) -> Dataset:
    """Copy of the source without pixel data, patched for highdicom's single-plane pitfalls.

    * Frame of Reference UID is required (the SEG shares it).
    * Slice Thickness must be present for single-frame sources; missing -> Spacing Between Slices.
    * Spacing Between Slices: highdicom invents 1.0 mm when absent; we use the slice thickness.
    * Multi-frame: highdicom reads Pixel Measures / Plane Orientation from the shared functional
      groups only; vendors (e.g. Philips) put them per frame, so the analysed frame's items are
      moved to the shared groups of the copy.
    * Absent Type 2 patient/study attributes (``TYPE2_PATIENT_STUDY``) are added empty.
    """
    if not source.get("FrameOfReferenceUID"):
        raise OutputEncodingError(f"{_describe(source)} has no Frame of Reference UID; a SEG cannot reference it")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns"):
        if keyword not in source:
            raise OutputEncodingError(f"{_describe(source)} lacks {keyword}")
    src = header_copy(source)
    if not src.get("Modality"):
        if str(src.SOPClassUID) not in MR_STORAGE_CLASSES:
            raise OutputEncodingError(f"{_describe(source)} has no Modality; the results cannot name it")
        src.Modality = "MR"  # Type 1, but implied by the MR SOP class
    if is_multiframe(src):
        _hoist_per_frame_geometry(src, frame_index)
    else:
        thickness = src.get("SliceThickness")
        spacing = src.get("SpacingBetweenSlices")
        if thickness in (None, ""):
            if spacing in (None, ""):
                raise OutputEncodingError(f"{_describe(source)} has neither Slice Thickness nor Spacing Between Slices")
            src.SliceThickness = spacing
        if spacing in (None, ""):
            src.SpacingBetweenSlices = src.SliceThickness
    if not is_multiframe(src):
        for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
            if not src.get(keyword):
                raise OutputEncodingError(f"{_describe(source)} lacks {keyword}; the SEG cannot be placed")
    return src


def pixel_spacing_mm(source: Dataset, frame_index: int | None) -> tuple[float, float]:
    """(row spacing, column spacing) in mm of the analysed frame."""
    if "PixelSpacing" in source:
        ps = source.PixelSpacing
        return float(ps[0]), float(ps[1])
    for fg_seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if fg_seq not in source:
            continue
        items = source[fg_seq].value
        item = items[frame_index or 0] if fg_seq.startswith("PerFrame") else items[0]
        if "PixelMeasuresSequence" in item and "PixelSpacing" in item.PixelMeasuresSequence[0]:
            ps = item.PixelMeasuresSequence[0].PixelSpacing
            return float(ps[0]), float(ps[1])
    raise OutputEncodingError(f"{_describe(source)} has no Pixel Spacing")


def frame_pixels(source: Dataset, frame_index: int | None) -> np.ndarray:
    """The analysed frame as a float 2D array (rescale not applied: display only)."""
    if "PixelData" not in source:
        raise OutputEncodingError(f"{_describe(source)} has no pixel data: the report image needs it")
    arr = source.pixel_array
    if frame_index is not None and arr.ndim == 3 and is_multiframe(source):
        arr = arr[frame_index]
    if arr.ndim != 2:
        raise OutputEncodingError(f"{_describe(source)}: expected a monochrome frame, got shape {arr.shape}")
    return arr.astype(np.float64)


def institution_kwargs(source: Dataset) -> dict[str, str]:
    """General Equipment attributes taken over from the source (the site), for highdicom kwargs."""
    out = {}
    for keyword, kwarg in (("InstitutionName", "institution_name"),
                           ("InstitutionalDepartmentName", "institutional_department_name")):
        value = source.get(keyword)
        if value:
            out[kwarg] = str(value)
    return out


def sop_uids(source: Dataset) -> tuple[UID, UID]:
    return UID(source.SOPClassUID), UID(source.SOPInstanceUID)


def _frame_item(source: Dataset, frame_index: int, sequence: str, keyword: str) -> Dataset | None:
    """The functional-group macro item for a frame (per-frame first, then shared)."""
    for fg_seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if fg_seq not in source:
            continue
        items = source[fg_seq].value
        item = items[frame_index] if fg_seq.startswith("PerFrame") else items[0]
        if sequence in item and keyword in item[sequence].value[0]:
            return item[sequence].value[0]
    return None


def library_view(src: Dataset, frame_index: int | None) -> Dataset:
    """The source as the SR Image Library sees it: root-level geometry of the analysed frame.

    highdicom's TID 1604 descriptors read Pixel Spacing, Slice Thickness, Image Orientation and
    Image Position from the top level, which an Enhanced MR keeps in functional groups.
    """
    if frame_index is None:
        return src
    view = Dataset()
    for elem in src:
        if elem.keyword not in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
            view.add(elem)
    for seq, keyword in (("PixelMeasuresSequence", "PixelSpacing"), ("PixelMeasuresSequence", "SliceThickness"),
                         ("PlaneOrientationSequence", "ImageOrientationPatient"),
                         ("PlanePositionSequence", "ImagePositionPatient")):
        item = _frame_item(src, frame_index, seq, keyword)
        if item is None:
            raise OutputEncodingError(f"frame {frame_index + 1} of {_describe(src)} has no {keyword}")
        setattr(view, keyword, item[keyword].value)
    return view


def _hoist_per_frame_geometry(src: Dataset, frame_index: int | None) -> None:
    per_frame = src.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        raise OutputEncodingError(f"{_describe(src)} is multi-frame but has no Per-frame Functional Groups")
    if "SharedFunctionalGroupsSequence" not in src or not src.SharedFunctionalGroupsSequence:
        src.SharedFunctionalGroupsSequence = [Dataset()]
    shared = src.SharedFunctionalGroupsSequence[0]
    frame = per_frame[frame_index or 0]
    for sequence in ("PixelMeasuresSequence", "PlaneOrientationSequence"):
        if sequence in shared:
            continue
        if sequence not in frame:
            raise OutputEncodingError(f"{_describe(src)} frame {(frame_index or 0) + 1} lacks {sequence}")
        shared[sequence] = copy.deepcopy(frame[sequence])
        for item in per_frame:
            if sequence in item:
                del item[sequence]
    measures = shared.PixelMeasuresSequence[0]
    if measures.get("SliceThickness") in (None, ""):
        raise OutputEncodingError(f"{_describe(src)} has no Slice Thickness in its Pixel Measures")
