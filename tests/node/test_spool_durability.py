"""The C-STORE write path: one-flush instance store, and the start-up scan that re-indexes spooled
files whose index row a power loss rolled back (the row is committed with synchronous=NORMAL)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dicom_node.headers import read_header
from dicom_node.spool import instance_path, rename_is_journaled, store_instance


@pytest.mark.parametrize("journaled", [True, False], ids=["journaled", "directory-fsync"])
def test_store_instance_writes_atomically_and_cleans_up(tmp_path: Path, journaled: bool) -> None:
    target = tmp_path / "studies" / "1.2" / "1.2.3" / "1.2.3.4.dcm"
    store_instance(target, b"first", journaled=journaled)
    assert target.read_bytes() == b"first"
    store_instance(target, b"second" * 1000, journaled=journaled)
    assert target.read_bytes() == b"second" * 1000
    (tmp_path / "studies" / "blocked").write_text("a file where a folder belongs")
    with pytest.raises(OSError):
        store_instance(tmp_path / "studies" / "blocked" / "1.2.3" / "1.2.3.5.dcm", b"x", journaled=journaled)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["1.2.3.4.dcm", "blocked"]


def test_spool_filesystem_detection() -> None:
    assert rename_is_journaled(Path("/proc/self")) is False  # procfs: the folder is fsynced as well


def test_start_indexes_spooled_files_the_index_lost(node_factory, mr_study) -> None:
    handle = node_factory(start=False)
    spool, index = handle.spool_dir, handle.node.index
    series = mr_study.series[0]
    # As after a power loss: the acknowledged files are in the spool, their NORMAL-committed rows are not.
    for path in series.files[:3]:
        header = read_header(path.read_bytes())
        store_instance(instance_path(spool, header.study_instance_uid, header.series_instance_uid,
                                     header.sop_instance_uid), path.read_bytes())
    # A write a crash cut short (never acknowledged), a stray temporary file and an expired file.
    short = instance_path(spool, mr_study.study_uid, series.series_uid, "1.2.3.999")
    short.write_bytes(series.files[3].read_bytes()[:200])
    stray = short.parent / f".{short.name}.abc.tmp"
    stray.write_bytes(b"partial")
    header = read_header(series.files[4].read_bytes())
    old = instance_path(spool, header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)
    old.write_bytes(series.files[4].read_bytes())
    long_ago = time.time() - 400 * 86400
    os.utime(old, (long_ago, long_ago))
    assert index.instance_count() == 0

    handle.node.start()
    assert index.indexed_sop_uids() == set(series.sop_uids[:3])
    row = index.series(series.series_uid)
    assert row is not None and row.state == "receiving" and row.instance_count == 3
    assert not stray.exists() and short.exists() and old.exists()
    # the restored series completes like any other (quiet period 0.5 s in the test configuration)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and index.series(series.series_uid).state != "complete":
        time.sleep(0.05)
    assert index.series(series.series_uid).state == "complete"


@pytest.mark.parametrize("sop_uid", ["1.2.3.4", "1.2.3.45"], ids=["even", "odd"])
def test_part10_header_matches_pynetdicoms_file_meta(sop_uid: str) -> None:
    from pydicom.dataset import FileMetaDataset
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
    from pynetdicom.dsutils import encode_file_meta

    from dicom_node.part10 import file_header

    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    meta.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
    expected = b"\0" * 128 + b"DICM" + encode_file_meta(meta)
    assert file_header("1.2.840.10008.5.1.4.1.1.4", sop_uid, "1.2.840.10008.1.2.1") == expected


def test_truncated_last_element_is_detected(mr_study) -> None:
    from dicom_node.headers import UndecodableDataset

    data = mr_study.files[0].read_bytes()
    read_header(data)
    with pytest.raises(UndecodableDataset):
        read_header(data[:-10])
