"""DICOM Segmentation (BINARY) of the analysed slice: one segment per structure present."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset

from sr_templates import codes
from sr_templates.identity import MANUFACTURER, AlgorithmInfo, derive_uid
from sr_templates.source_slice import (
    OutputEncodingError,
    check_frame_index,
    check_label_map,
    institution_kwargs,
    metadata_copy,
)

SEG_SERIES_NUMBER = 9901
SEG_SERIES_DESCRIPTION = "BianqueNet disc quantitation - segmentation"
OUTPUT_CHARACTER_SET = "ISO_IR 192"  # UTF-8: any patient name decoded from the source survives


def segment_tracking_uid(uid_seed: str, structure: codes.StructureCode) -> str:
    """Tracking UID of a structure's segment (and of the SR group about it)."""
    return derive_uid(uid_seed, "tracking", structure.tracking_id)


def present_structures(label_map: np.ndarray) -> list[codes.StructureCode]:
    """Structures with at least one pixel, in label-map value order."""
    values = sorted(int(v) for v in np.unique(label_map) if int(v) != 0)
    return [codes.STRUCTURES[v] for v in values]


def _segment_description(number: int, structure: codes.StructureCode, algorithm: AlgorithmInfo,
                         uid_seed: str) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=structure.label,
        segmented_property_category=structure.category,
        segmented_property_type=structure.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.seg_identification(),
        tracking_id=structure.tracking_id,
        tracking_uid=segment_tracking_uid(uid_seed, structure),
        anatomic_regions=[structure.anatomic_region] if structure.anatomic_region else None,
        display_color=hd.color.CIELabColor.from_rgb(*structure.display_rgb),
    )


def build_segmentation(
    source: Dataset,
    label_map: np.ndarray,
    algorithm: AlgorithmInfo,
    *,
    frame_index: int | None = None,
    series_number: int = SEG_SERIES_NUMBER,
    uid_seed: str,
) -> hd.seg.Segmentation:
    """BINARY SEG of one analysed slice.

    Args:
        source: the analysed MR instance (pixel data not needed): single-frame MR, or an Enhanced MR
            multi-frame instance together with ``frame_index``.
        label_map: uint8 (Rows, Columns) class map ON THE SOURCE PIXEL GRID (row 0 = first stored
            row of the source frame; no flipping is applied here), values 0 background, 1 CSF,
            2 L1, 3 L1/L2, 4 L2, 5 L2/L3, 6 L3, 7 L3/L4, 8 L4, 9 L4/L5, 10 L5, 11 L5/S1, 12 S1
            (sacrum), 13 presacral fat.
        algorithm: model identity written into every segment's algorithm identification.
        frame_index: 0-based frame of a multi-frame source (Referenced Frame Number = index + 1).
        series_number: Series Number of the new SEG series.
        uid_seed: seed for the deterministic series/SOP/tracking UIDs (include the job version).

    Segments are numbered 1..n in label-value order over the structures present; each carries
    Tracking ID = ``StructureCode.tracking_id`` and a Tracking UID derived from ``uid_seed``, which
    the SR reuses for its measurement group.

    Raises:
        OutputEncodingError: label map shape/values or source geometry unusable.
    """
    frame_index = check_frame_index(source, frame_index)
    labels = check_label_map(source, label_map)
    src = metadata_copy(source, frame_index)
    structures = present_structures(labels)
    if not structures:
        raise OutputEncodingError(
            f"label map of SOP instance {source.get('SOPInstanceUID', '?')} contains no structure: no SEG to build")
    segment_map = np.zeros_like(labels)
    for number, structure in enumerate(structures, start=1):
        segment_map[labels == structure.label_value] = number
    if frame_index is None:
        pixel_array = segment_map
    else:
        pixel_array = np.zeros((int(src.NumberOfFrames), *segment_map.shape), dtype=np.uint8)
        pixel_array[frame_index] = segment_map
    descriptions = [_segment_description(n, s, algorithm, uid_seed) for n, s in enumerate(structures, start=1)]
    return hd.seg.Segmentation(
        source_images=[src],
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=derive_uid(uid_seed, "seg", "series"),
        series_number=series_number,
        sop_instance_uid=derive_uid(uid_seed, "seg", "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.model_name,
        software_versions=algorithm.software_version,
        device_serial_number=algorithm.serial_number,
        content_description="BianqueNet lumbar spine segmentation",
        content_label="BIANQUENET",
        series_description=SEG_SERIES_DESCRIPTION,
        omit_empty_frames=True,
        specific_character_set=OUTPUT_CHARACTER_SET,
        **institution_kwargs(src),
        coding_schemes=[codes.coding_scheme_identification()],
    )

