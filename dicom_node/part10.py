"""The DICOM Part 10 file header (preamble, 'DICM', File Meta Information) for a received data set.

Encoded directly (explicit VR little endian, as Part 10 requires) instead of through pydicom's
writer: on the C-STORE path that saves building and validating a pydicom data set per instance.
The elements are the ones pynetdicom's ``Event.file_meta`` holds, so the files are the same.
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE = b"\x00" * 128 + b"DICM"


def _element(element: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _text(value: str) -> bytes:
    return value.strip(" \0").encode("ascii", "replace")


def file_header(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble, prefix and File Meta Information group (0002) with its group length."""
    body = b"".join((
        struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
        _element(0x0002, b"UI", _text(sop_class_uid), b"\0"),
        _element(0x0003, b"UI", _text(sop_instance_uid), b"\0"),
        _element(0x0010, b"UI", _text(transfer_syntax_uid), b"\0"),
        _element(0x0012, b"UI", _text(str(PYNETDICOM_IMPLEMENTATION_UID)), b"\0"),
        _element(0x0013, b"SH", _text(PYNETDICOM_IMPLEMENTATION_VERSION), b" "),
    ))
    return PREAMBLE + struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body
