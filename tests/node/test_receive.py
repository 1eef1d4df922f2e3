"""Receiving over real loopback associations: DCMTK storescu/echoscu and pynetdicom SCUs."""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
import pynetdicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_node import status_codes
from peers import peer_env, require_tool

pytestmark = pytest.mark.peers  # real DCMTK / Orthanc peers over loopback


def _storescu(node, *paths: Path, calling: str = "STORESCU", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    exe = require_tool("/usr/bin/storescu")
    cmd = [exe, "-aet", calling, "-aec", node.aet, *extra, node.host, str(node.port), *map(str, paths)]
    return subprocess.run(cmd, env=peer_env(), capture_output=True, text=True, timeout=60)


def _send_raw(node, dataset_or_path, sop_class=MRImageStorage, calling: str = "TESTSCU", ts=ExplicitVRLittleEndian):
    """C-STORE with pynetdicom; returns the response status (int) or None without association."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(sop_class, ts)
    if ts != ExplicitVRLittleEndian:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(node.host, node.port, ae_title=node.aet)
    if not assoc.is_established:
        return None
    try:
        rsp = assoc.send_c_store(dataset_or_path)
    finally:
        assoc.release()
    return int(rsp.Status) if rsp and "Status" in rsp else None


def test_storescu_study_is_spooled_and_indexed(running_node, mr_study) -> None:
    result = _storescu(running_node, mr_study.directory, extra=("+sd", "+r"))
    assert result.returncode == 0, result.stderr
    index = running_node.index
    assert index.instance_count() == len(mr_study.files)
    for series in mr_study.series:
        row = index.series(series.series_uid)
        assert row is not None and row.study_uid == mr_study.study_uid and row.instance_count == len(series.files)
        assert row.description == series.description and row.modality == "MR"
        for sop_uid, original in zip(series.sop_uids, series.files):
            stored = running_node.spool_dir / "studies" / mr_study.study_uid / series.series_uid / f"{sop_uid}.dcm"
            assert stored.is_file()
            ds = pydicom.dcmread(stored)
            assert ds.SOPInstanceUID == sop_uid
            assert ds.PixelData == pydicom.dcmread(original).PixelData
    assert not list(running_node.spool_dir.rglob("*.tmp"))


def test_duplicate_instances_are_idempotent(running_node, mr_study) -> None:
    files = mr_study.series[0].files[:2]
    assert _storescu(running_node, *files).returncode == 0
    assert _storescu(running_node, *files).returncode == 0
    assert _send_raw(running_node, files[0]) == status_codes.SUCCESS
    assert running_node.index.instance_count() == 2
    assert running_node.index.series(mr_study.series[0].series_uid).instance_count == 2


def test_echoscu_succeeds_and_unknown_calling_ae_is_rejected(running_node, mr_study) -> None:
    echoscu = require_tool("/usr/bin/echoscu")
    ok = subprocess.run([echoscu, "-aet", "ECHOSCU", "-aec", running_node.aet, running_node.host, str(running_node.port)],
                        env=peer_env(), capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([echoscu, "-aet", "INTRUDER", "-aec", running_node.aet, running_node.host, str(running_node.port)],
                         env=peer_env(), capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0
    assert "Calling AE Title Not Recognized" in bad.stderr
    refused = _storescu(running_node, mr_study.series[0].files[0], calling="INTRUDER")
    assert refused.returncode != 0
    assert running_node.index.instance_count() == 0
    # pynetdicom sees the rejection as well
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(running_node.host, running_node.port, ae_title=running_node.aet)
    assert assoc.is_rejected


def test_sender_address_restriction(node_factory, mr_study) -> None:
    node = node_factory({"allowed_senders": [{"ae_title": "STORESCU", "address": "10.9.0.0/16"},
                                             {"ae_title": "TESTSCU", "address": "127.0.0.0/8"}]})
    assert _storescu(node, mr_study.series[0].files[0]).returncode != 0  # right AE, wrong network
    assert _send_raw(node, mr_study.series[0].files[0]) == status_codes.SUCCESS


def _truncated(path: Path, tmp_path: Path) -> Path:
    data = path.read_bytes()
    out = tmp_path / "truncated.dcm"
    out.write_bytes(data[: len(data) - 500])
    return out


def test_malformed_input_gets_failure_status_and_node_keeps_serving(
    running_node, mr_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Send files byte for byte (pynetdicom otherwise decodes and re-encodes them, repairing lengths).
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    good = mr_study.series[0].files
    # 1. truncated file (pixel data cut short)
    assert _send_raw(running_node, _truncated(good[0], tmp_path)) == status_codes.CANNOT_UNDERSTAND
    # 2. dataset without SOP Instance UID (the request still names one, from the file meta)
    ds = pydicom.dcmread(good[1])
    del ds.SOPInstanceUID
    no_uid = tmp_path / "no-uid.dcm"
    ds.save_as(no_uid, enforce_file_format=False)
    assert _send_raw(running_node, no_uid) == status_codes.MISSING_OR_INVALID_UID
    # 3. non-DICOM payload: a file meta header followed by text
    ds = pydicom.dcmread(good[2])
    header = BytesIO()
    pydicom.filewriter.write_file_meta_info(header, ds.file_meta, enforce_standard=True)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + header.getvalue() + b"this is not a DICOM data set at all" * 20)
    assert _send_raw(running_node, junk) == status_codes.CANNOT_UNDERSTAND
    # 4. a path-unsafe UID
    ds = pydicom.dcmread(good[3])
    ds.SeriesInstanceUID = "1.2.3/../../etc"
    unsafe = tmp_path / "unsafe.dcm"
    ds.save_as(unsafe, enforce_file_format=True)
    assert _send_raw(running_node, unsafe) == status_codes.MISSING_OR_INVALID_UID
    # 5. dataset UID differs from the request UID
    ds = pydicom.dcmread(good[4])
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    mismatch = tmp_path / "mismatch.dcm"
    ds.save_as(mismatch, enforce_file_format=False)
    assert _send_raw(running_node, mismatch) == status_codes.UID_MISMATCH
    # 6. pixel data shorter than Rows x Columns, with consistent element lengths (re-encoded by the SCU)
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", False)
    ds = pydicom.dcmread(good[5])
    ds.PixelData = ds.PixelData[:1000]
    short = tmp_path / "short.dcm"
    ds.save_as(short, enforce_file_format=True)
    assert _send_raw(running_node, short) == status_codes.CANNOT_UNDERSTAND
    assert running_node.index.instance_count() == 0
    assert not list((running_node.spool_dir).rglob("*.dcm"))
    # the node still serves the next association
    assert _storescu(running_node, *good).returncode == 0
    assert running_node.index.instance_count() == len(good)


def test_write_failure_returns_out_of_resources(running_node, mr_study) -> None:
    # A regular file where the study folder should be: the spool write fails even for root.
    blocker = running_node.spool_dir / "studies" / mr_study.study_uid
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    assert _send_raw(running_node, mr_study.series[0].files[0]) == status_codes.OUT_OF_RESOURCES
    assert running_node.index.instance_count() == 0
    blocker.unlink()
    assert _send_raw(running_node, mr_study.series[0].files[0]) == status_codes.SUCCESS


@pytest.mark.parametrize("ts", [RLELossless, JPEG2000Lossless, JPEGLSLossless, DeflatedExplicitVRLittleEndian],
                         ids=lambda ts: ts.name)
def test_compressed_transfer_syntaxes_are_stored_as_received(running_node, mr_study, tmp_path: Path, ts) -> None:
    ds = pydicom.dcmread(mr_study.series[0].files[0])
    if ts.is_compressed:
        ds.compress(ts)
    else:
        ds.file_meta.TransferSyntaxUID = ts
    path = tmp_path / "compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert _send_raw(running_node, path, ts=ts) == status_codes.SUCCESS
    stored = next(running_node.spool_dir.rglob(f"{ds.SOPInstanceUID}.dcm"))
    back = pydicom.dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == ts
    assert (back.pixel_array == pydicom.dcmread(mr_study.series[0].files[0]).pixel_array).all()


def test_status_code_constants() -> None:
    assert status_codes.SUCCESS == 0x0000
    assert status_codes.OUT_OF_RESOURCES == 0xA700
    assert status_codes.CANNOT_UNDERSTAND == 0xC210
    assert status_codes.PROCESSING_ERROR == 0xC211
    assert status_codes.MISSING_OR_INVALID_UID == 0xC212
    assert status_codes.UID_MISMATCH == 0xC213
    assert status_codes.is_success(0x0000) and status_codes.is_success(0xB000)
    assert not status_codes.is_success(0xA700)
    assert status_codes.is_permanent_failure(0x0122) and status_codes.is_permanent_failure(0xA900)
    assert status_codes.is_permanent_failure(0xC210)
    assert not status_codes.is_permanent_failure(0xA700) and not status_codes.is_permanent_failure(0x0110)


def test_every_promised_transfer_syntax_and_storage_class_is_negotiated(running_node) -> None:
    from pydicom.uid import ExplicitVRBigEndian, JPEG2000, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSNearLossless
    from pynetdicom.sop_class import EnhancedMRImageStorage, SegmentationStorage  # type: ignore[attr-defined]

    syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
                JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000,
                RLELossless]
    ae = AE(ae_title="TESTSCU")
    for ts in syntaxes:
        ae.add_requested_context(MRImageStorage, ts)
    for sop_class in (EnhancedMRImageStorage, SegmentationStorage, "1.2.840.10008.5.1.4.1.1.88.22"):
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate(running_node.host, running_node.port, ae_title=running_node.aet)
    assert assoc.is_established
    try:
        accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
    finally:
        assoc.release()
    for ts in syntaxes:
        assert (str(MRImageStorage), str(ts)) in accepted, ts.name
    assert (str(EnhancedMRImageStorage), str(ExplicitVRLittleEndian)) in accepted
    assert (str(SegmentationStorage), str(ExplicitVRLittleEndian)) in accepted
    assert ("1.2.840.10008.5.1.4.1.1.88.22", str(ExplicitVRLittleEndian)) in accepted


def test_orthanc_pushes_a_study_to_the_node(running_node, orthanc, mr_study) -> None:
    for path in mr_study.files:
        orthanc.upload(path)
    orthanc.register_modality("bianque", running_node.aet, running_node.host, running_node.port)
    study_id = orthanc.post("/tools/lookup", mr_study.study_uid)[0]["ID"]
    orthanc.store_to_modality("bianque", [study_id])
    assert running_node.index.instance_count() == len(mr_study.files)
    for series in mr_study.series:
        assert running_node.index.series(series.series_uid).instance_count == len(series.files)
