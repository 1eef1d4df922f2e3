"""Decode the few header elements the index needs from the bytes of a received instance."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError

from .uids import InvalidUID, validate_uid

UNDEFINED_LENGTH = 0xFFFFFFFF


class UndecodableDataset(ValueError):
    """The bytes are not a readable DICOM data set (non-DICOM payload, truncated data)."""


@dataclass(frozen=True)
class InstanceHeader:
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    transfer_syntax_uid: str


def _check_complete(ds: pydicom.Dataset) -> None:
    """Raise if the data set was cut short (pydicom reads a short last value silently).

    The elements are read in stream order, so only the last top-level element can be short:
    every earlier one was followed by more data. Checking it alone keeps this O(1) per instance.
    """
    last = next(reversed(ds.keys()), None)
    for tag in () if last is None else (last,):
        raw = ds.get_item(tag)
        length = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if length is None or length == UNDEFINED_LENGTH or not isinstance(value, bytes):
            continue
        if len(value) != length:
            raise UndecodableDataset(f"data set is truncated: element {tag} holds {len(value)} of {length} bytes")


def _check_native_pixel_length(ds: pydicom.Dataset) -> None:
    """Raise if uncompressed Pixel Data is shorter than Rows x Columns x samples x frames needs."""
    if "PixelData" not in ds or ds.file_meta is None:
        return
    transfer_syntax = ds.file_meta.get("TransferSyntaxUID")
    if transfer_syntax is None or transfer_syntax.is_compressed:
        return
    try:
        bits = int(ds.BitsAllocated)
        pixels = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
        pixels *= int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise UndecodableDataset("image pixel module is incomplete (Rows, Columns or Bits Allocated)") from None
    expected = (pixels * bits + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise UndecodableDataset(f"pixel data is truncated: {actual} of {expected} bytes")


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def read_header(data: bytes) -> InstanceHeader:
    """Parse a Part 10 byte string; raise UndecodableDataset or InvalidUID."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        _check_complete(ds)
        _check_native_pixel_length(ds)
        sop_uid = ds.get("SOPInstanceUID")
        sop_class = ds.get("SOPClassUID")
        series_uid = ds.get("SeriesInstanceUID")
        study_uid = ds.get("StudyInstanceUID")
        modality = str(ds.get("Modality", "") or "")
        description = str(ds.get("SeriesDescription", "") or "")
        series_number = _int_or_none(ds.get("SeriesNumber"))
        instance_number = _int_or_none(ds.get("InstanceNumber"))
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if ds.file_meta else ""
    except UndecodableDataset:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise UndecodableDataset(f"data set cannot be decoded: {exc}") from exc
    return InstanceHeader(
        sop_instance_uid=validate_uid(sop_uid, "SOP Instance UID"),
        sop_class_uid=validate_uid(sop_class, "SOP Class UID"),
        series_instance_uid=validate_uid(series_uid, "Series Instance UID"),
        study_instance_uid=validate_uid(study_uid, "Study Instance UID"),
        modality=modality[:16],
        series_description=description[:64],
        series_number=series_number,
        instance_number=instance_number,
        transfer_syntax_uid=transfer_syntax,
    )


__all__ = ["InstanceHeader", "InvalidUID", "UndecodableDataset", "read_header"]
