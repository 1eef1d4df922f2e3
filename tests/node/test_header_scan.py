"""The C-STORE path's fast header scan gives what pydicom's path gives, or leaves the data set to it."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from dicom_node.header_scan import scan_header
from dicom_node.headers import UndecodableDataset, read_header
from dicom_node.part10 import file_header
from dicom_node.uids import InvalidUID
from dicom_factory import mr_image

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom_mr_samples"
REAL_FILES = sorted(p for p in SAMPLES.rglob("*.dcm*") if "big_endian" not in p.name)


def split_part10(data: bytes) -> tuple[bytes, str]:
    """(data set bytes, transfer syntax) of a Part 10 file."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert data[128:132] == b"DICM"
    group_length = struct.unpack_from("<I", data, 132 + 8)[0]
    return data[132 + 12 + group_length:], str(ds.file_meta.TransferSyntaxUID)


def part10(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), transfer_syntax


def image(rows: int, cols: int, **attributes: object) -> Dataset:
    """An MR slice with the UIDs and series attributes the index reads."""
    defaults: dict[str, object] = {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
                                    "SeriesNumber": 3, "InstanceNumber": 1, "SeriesDescription": "T2 TSE SAG"}
    return mr_image(np.zeros((rows, cols), np.uint16), **{**defaults, **attributes})


def both(body: bytes, transfer_syntax: str, ds: Dataset | None = None):
    """(fast result, pydicom result) for a data set's bytes as a C-STORE carries them."""
    sop_class = str(ds.SOPClassUID) if ds is not None else "1.2.840.10008.5.1.4.1.1.4"
    sop = str(ds.SOPInstanceUID) if ds is not None else "1.2.3"
    return scan_header(body, transfer_syntax), read_header(file_header(sop_class, sop, transfer_syntax) + body)


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_scanner_files_give_the_same_header_on_the_fast_path(path: Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    body, transfer_syntax = split_part10(data)
    fast, slow = both(body, transfer_syntax, pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
    assert fast is not None, "a well-formed scanner file must not need pydicom's path"
    assert fast == slow


def test_real_files_cover_sequences_and_compressed_pixels() -> None:
    """The comparison above is only worth something if the files exercise what the scan skips."""
    names = {p.name for p in REAL_FILES}
    assert {"philips_mprage.dcm.gz", "MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_J2KR.dcm",
            "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"} <= names
    syntaxes = {split_part10(gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())[1]
                for p in REAL_FILES}
    assert len(syntaxes) >= 4


def _nested_sequences(ds: Dataset) -> Dataset:
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D0146", "SRT", "Lumbar spine"
    item = Dataset()
    item.AnatomicRegionSequence = DicomSequence([inner])
    ds.ReferencedSeriesSequence = DicomSequence([item, Dataset()])
    return ds


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_lengths", [False, True])
def test_generated_data_sets_with_nested_sequences(transfer_syntax: str, undefined_lengths: bool) -> None:
    ds = _nested_sequences(image(64, 48, InstanceNumber=7))
    ds.SeriesNumber = " 12"
    ds.SeriesDescription = "T2 TSE SAG  "
    data, _ = part10(ds, transfer_syntax)
    if undefined_lengths:  # re-encode every sequence and item with undefined length, as many scanners do
        for element in ds.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
        for element in ds.ReferencedSeriesSequence:
            element.is_undefined_length_sequence_item = True  # type: ignore[attr-defined]
        data, _ = part10(ds, transfer_syntax)
    body, syntax = split_part10(data)
    assert syntax == transfer_syntax
    assert (b"\xfe\xff\xdd\xe0" in body) == undefined_lengths  # a sequence delimitation item
    fast, slow = both(body, syntax, ds)
    assert fast is not None
    assert fast == slow
    assert (fast.series_number, fast.instance_number, fast.series_description) == (12, 7, "T2 TSE SAG")


def test_uid_errors_are_the_same_on_both_paths() -> None:
    ds = image(16, 16)
    ds.SeriesInstanceUID = "1.2.abc"
    body, syntax = split_part10(part10(ds)[0])
    with pytest.raises(InvalidUID, match="Series Instance UID") as fast:
        scan_header(body, syntax)
    with pytest.raises(InvalidUID) as slow:
        read_header(file_header(str(ds.SOPClassUID), str(ds.SOPInstanceUID), syntax) + body)
    assert str(fast.value) == str(slow.value)
    del ds.SOPInstanceUID
    body, syntax = split_part10(part10(ds)[0])
    with pytest.raises(InvalidUID, match="SOP Instance UID is missing"):
        scan_header(body, syntax)


def _modified(change) -> tuple[bytes, str, Dataset]:
    ds = image(32, 32)
    change(ds)
    body, syntax = split_part10(part10(ds)[0])
    return body, syntax, ds


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ds: setattr(ds, "SeriesDescription", "Wirbelsäule T2"), id="non-ascii text"),
        pytest.param(lambda ds: setattr(ds, "SeriesNumber", "3.0"), id="decimal IS"),
        pytest.param(lambda ds: setattr(ds, "InstanceNumber", ["1", "2"]), id="multi-valued IS"),
        pytest.param(lambda ds: setattr(ds, "SeriesDescription", ["a", "b"]), id="multi-valued text"),
        pytest.param(lambda ds: delattr(ds, "Rows"), id="pixel module incomplete"),
    ],
)
def test_unusual_values_are_left_to_pydicom(change) -> None:
    body, syntax, ds = _modified(change)
    assert scan_header(body, syntax) is None
    try:
        read_header(file_header(str(ds.SOPClassUID), str(ds.SOPInstanceUID), syntax) + body)
    except UndecodableDataset:
        pass  # the slow path decides, with its own message


def test_truncated_and_foreign_bytes_are_left_to_pydicom_which_rejects_them() -> None:
    ds = image(64, 64)
    body, syntax = split_part10(part10(ds)[0])
    prefix = file_header(str(ds.SOPClassUID), str(ds.SOPInstanceUID), syntax)
    for bad in (body[:-100], body[: len(body) // 2], np.random.default_rng(1).bytes(5000), b"\x08\x00"):
        assert scan_header(bad, syntax) is None
        with pytest.raises((UndecodableDataset, InvalidUID)):
            read_header(prefix + bad)
    # pixel data shorter than the image needs, with a consistent element length
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    body, syntax = split_part10(part10(ds)[0])
    assert scan_header(body, syntax) is None
    with pytest.raises(UndecodableDataset, match="truncated"):
        read_header(prefix + body)


def test_big_endian_and_deflate_are_left_to_pydicom() -> None:
    path = SAMPLES / "pydicom-data" / "emri_small_big_endian.dcm"
    body, syntax = split_part10(path.read_bytes())
    assert syntax == ExplicitVRBigEndian
    assert scan_header(body, syntax) is None
    assert scan_header(b"", "1.2.840.10008.1.2.1.99") is None
